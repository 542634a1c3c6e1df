"""The straightforward baseline (SPEC §10): what a user would write instead of catsync.

Parse a Sales Layer export, keep visible items, build productSet-like documents with their variants
and collection handles, hash canonical JSON, diff against stored hashes (none: a first run).
    python3 bench/baseline.py EXPORT.json
"""
import hashlib
import json
import sys

page = json.load(open(sys.argv[1]))
schema = page["data_schema"]
def columns(table):
    return [c if isinstance(c, str) else next(iter(c)) for c in schema[table]]
cat_cols, prod_cols, var_cols = columns("catalogue"), columns("products"), columns("product_formats")
cats = {r[1]: dict(zip(cat_cols, r)) for r in page["data"]["catalogue"]}
variants = {}
for r in page["data"]["product_formats"]:
    v = dict(zip(var_cols, r))
    if v.get("format_status", "V") == "V":
        variants.setdefault(v["ID_products"], []).append(v)
stored = {}
changed = 0
for r in page["data"]["products"]:
    p = dict(zip(prod_cols, r))
    if p.get("product_status") != "V":
        continue
    ids = p["ID_catalogue"] if isinstance(p["ID_catalogue"], list) else [p["ID_catalogue"]]
    doc = {
        "handle": p["product_reference"].lower(),
        "title": p["product_name_en"],
        "descriptionHtml": p["product_description_en"],
        "vendor": p["product_brand"],
        "productType": cats[ids[0]]["section_name_en"] if ids and ids[0] in cats else "",
        "tags": [t for t in p["product_tags"].split(",") if t],
        "status": "ACTIVE",
        "collections": [cats[c]["section_reference"].lower() for c in ids if c in cats],
        "variants": [{"sku": v["format_sku"], "price": "%.2f" % float(v["format_price"]),
                      "optionValues": [{"optionName": "Color", "name": v["color_en"]}, {"optionName": "Size", "name": v["size"]}]}
                     for v in variants.get(p["ID"], [])],
        "translations": {"es": {"title": p["product_name_es"]}},
    }
    h = hashlib.blake2b(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if stored.get(p["ID"]) != h:
        changed += 1
print(changed, "documents to send")

//! Scenario files: serde types mirroring the YAML (`schemas/scenario.schema.json` is the source
//! of truth), and [`load`], which validates a file with positioned diagnostics and resolves it into
//! a [`Scenario`] (paths resolved, one action per step, expectations that fit their action).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::adopt::MatchBy;
use crate::config::schema::validate_with;
use crate::config::yaml::{self, SpanIndex};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::stages::ItemKind;

/// The scenario JSON Schema, embedded at build time.
pub const SCENARIO_SCHEMA: &str = include_str!("../../schemas/scenario.schema.json");

fn schema() -> &'static (Value, jsonschema::Validator) {
    static SCHEMA: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let value: Value = serde_json::from_str(SCENARIO_SCHEMA).expect("the embedded scenario schema is valid JSON");
        let validator = jsonschema::draft202012::new(&value).expect("the embedded scenario schema is a valid schema");
        (value, validator)
    })
}

/// A whole scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    #[serde(default)]
    pub description: Option<String>,
    pub pipeline: String,
    #[serde(default)]
    pub sandbox: SandboxSettings,
    pub steps: Vec<RawStep>,
}

/// Settings of the scenario's sandbox stores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    #[serde(default)]
    pub faults: Option<String>,
    #[serde(default)]
    pub bucket: Option<f64>,
    #[serde(default)]
    pub restore_rate: Option<f64>,
}

/// One file or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Files {
    One(String),
    Many(Vec<String>),
}

impl Files {
    pub fn list(&self) -> Vec<&str> {
        match self {
            Files::One(f) => vec![f.as_str()],
            Files::Many(fs) => fs.iter().map(String::as_str).collect(),
        }
    }
}

/// One item or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(ts) => ts.clone(),
        }
    }
}

/// One step as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: Option<Files>,
    #[serde(default)]
    pub sources: IndexMap<String, Files>,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub patch: Vec<Patch>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub plan: Option<PlanAction>,
    #[serde(default)]
    pub run: Option<RunAction>,
    #[serde(default)]
    pub refresh: Option<RunAction>,
    #[serde(default)]
    pub deactivate: Option<Empty>,
    #[serde(default)]
    pub activate: Option<Empty>,
    #[serde(default)]
    pub replay: Option<ReplayAction>,
    #[serde(default)]
    pub edit_store: Option<Vec<StoreEdit>>,
    #[serde(default)]
    pub import: Option<ImportAction>,
    #[serde(default)]
    pub drift: Option<DriftAction>,
    #[serde(default)]
    pub expect: Expect,
}

/// One edit of the store, as a merchant makes it in the Shopify admin: exactly one key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreEdit {
    #[serde(default)]
    pub set_product: Option<SetProduct>,
    #[serde(default)]
    pub set_variant: Option<SetVariant>,
    #[serde(default)]
    pub set_collection: Option<SetCollection>,
    #[serde(default)]
    pub delete_product: Option<String>,
    #[serde(default)]
    pub delete_collection: Option<String>,
    #[serde(default)]
    pub create_product: Option<NewProduct>,
    #[serde(default)]
    pub create_collection: Option<NewCollection>,
}

/// `set_product`: the product with `handle`, fields set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetProduct {
    pub handle: String,
    #[serde(default, rename = "new_handle")]
    pub new_handle: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub product_type: Option<String>,
    #[serde(default)]
    pub description_html: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `set_variant`: the variant with `sku` (in whichever product), fields set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetVariant {
    pub sku: String,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub compare_at_price: Option<String>,
    #[serde(default)]
    pub barcode: Option<String>,
}

/// `set_collection`: the collection with `handle`, fields set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetCollection {
    pub handle: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description_html: Option<String>,
}

/// `create_product`: a product catsync does not manage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewProduct {
    pub handle: String,
    pub title: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub product_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// By SKU.
    pub variants: IndexMap<String, NewVariant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    pub price: String,
    pub options: IndexMap<String, String>,
}

/// `create_collection`: a collection catsync does not manage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    pub handle: String,
    pub title: String,
}

/// `import:` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportAction {
    #[serde(default, rename = "match")]
    pub by: Option<MatchBy>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `drift:` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftAction {
    #[serde(default)]
    pub detailed_exitcode: bool,
}

/// An action without options (`deactivate: {}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A text edit of the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub find: String,
    pub replace: String,
    #[serde(default)]
    pub all: bool,
}

/// `plan:` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanAction {
    #[serde(default)]
    pub refresh: bool,
    #[serde(default)]
    pub only: Vec<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub detailed_exitcode: bool,
    #[serde(default)]
    pub golden: Option<String>,
}

/// `run:` and `refresh:` options (the schema keeps selections and `resume` to `run`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAction {
    #[serde(default)]
    pub only: Vec<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub resume: bool,
    #[serde(default)]
    pub allow_mass_delete: bool,
    #[serde(default)]
    pub deactivate_after_batches: Option<u32>,
    #[serde(default)]
    pub crash_after_batches: Option<u32>,
    #[serde(default)]
    pub inject: Option<OneOrMany<Inject>>,
    #[serde(default)]
    pub adopt: Option<MatchBy>,
}

/// A source export arriving mid-run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    pub after_batches: u32,
    pub source: Files,
    #[serde(default)]
    pub stage: Option<String>,
}

/// `replay:` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayAction {
    pub sources: Files,
    pub goldens: String,
    #[serde(default)]
    pub format: Option<GoldenFormat>,
    #[serde(default = "yes")]
    pub run: bool,
}

fn yes() -> bool {
    true
}

/// How golden plans are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoldenFormat {
    Text,
    Json,
}

/// What a step must show.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub export: Option<String>,
    #[serde(default)]
    pub exit: Option<i32>,
    #[serde(default)]
    pub error: Option<OneOrMany<String>>,
    #[serde(default)]
    pub run_status: Option<String>,
    #[serde(default)]
    pub notes: Option<Vec<String>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default)]
    pub queued: Option<usize>,
    #[serde(default)]
    pub created: Option<Count>,
    #[serde(default)]
    pub updated: Option<Count>,
    #[serde(default)]
    pub archived: Option<Count>,
    #[serde(default)]
    pub deleted: Option<Count>,
    #[serde(default)]
    pub skipped: Option<Count>,
    #[serde(default)]
    pub unchanged: Option<usize>,
    #[serde(default)]
    pub changes: Option<Vec<ChangeMatcher>>,
    #[serde(default)]
    pub changes_include: Option<Vec<ChangeMatcher>>,
    #[serde(default)]
    pub requests: Option<IndexMap<String, usize>>,
    #[serde(default)]
    pub store: Option<StoreExpect>,
    #[serde(default)]
    pub adopted: Option<Count>,
    #[serde(default)]
    pub ambiguous: Option<Vec<String>>,
    #[serde(default)]
    pub drift: Option<DriftExpect>,
}

/// What `catsync drift` must report.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftExpect {
    #[serde(default)]
    pub edited: Option<usize>,
    #[serde(default)]
    pub deleted: Option<usize>,
    #[serde(default)]
    pub unmanaged: Option<usize>,
    #[serde(default)]
    pub items: Option<Vec<DriftMatcher>>,
}

/// An item `drift` must report; every key given must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftMatcher {
    #[serde(default)]
    pub kind: Option<String>,
    /// The Sales Layer id (of an unmanaged store item: of the catalog item it looks like).
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub handle: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    #[serde(default)]
    pub values: Option<IndexMap<String, SentAndStore>>,
    #[serde(default)]
    pub by: Option<String>,
}

/// A field's value as catsync sent it and as the store has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentAndStore {
    #[serde(default)]
    pub sent: Option<Value>,
    #[serde(default)]
    pub store: Option<Value>,
}

/// A number of changes: in all, or by kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Count {
    Total(usize),
    ByKind(ByKind),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByKind {
    #[serde(default)]
    pub products: Option<usize>,
    #[serde(default)]
    pub collections: Option<usize>,
}

/// A Sales Layer id, written as a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Text(String),
    Number(i64),
}

impl Id {
    pub fn text(&self) -> String {
        match self {
            Id::Text(s) => s.clone(),
            Id::Number(n) => n.to_string(),
        }
    }
}

/// A change a plan or a run must have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeMatcher {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    #[serde(default)]
    pub skipped: Option<String>,
    #[serde(default)]
    pub handle: Option<String>,
    #[serde(default)]
    pub export: Option<String>,
}

impl ChangeMatcher {
    /// The item kind named by `kind` (`collection` is a category).
    pub fn item_kind(&self) -> Option<ItemKind> {
        self.kind.as_deref().map(|k| if k == "product" { ItemKind::Product } else { ItemKind::Category })
    }
}

/// The store contents a step must leave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreExpect {
    #[serde(default)]
    pub export: Option<String>,
    #[serde(default)]
    pub products: Option<usize>,
    #[serde(default)]
    pub collections: Option<usize>,
    /// By handle: `"absent"` or the fields (checked by the schema, compared as JSON).
    #[serde(default)]
    pub product: IndexMap<String, Value>,
    #[serde(default)]
    pub collection: IndexMap<String, Value>,
}

/// A loaded scenario: paths resolved against its file, one action per step.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub description: Option<String>,
    pub pipeline: PathBuf,
    pub sandbox: SandboxSettings,
    pub steps: Vec<Step>,
}

/// One step, resolved.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based.
    pub number: usize,
    pub name: Option<String>,
    pub source: Vec<PathBuf>,
    pub sources: Vec<(String, Vec<PathBuf>)>,
    pub pipeline: Option<PathBuf>,
    pub patch: Vec<Patch>,
    pub env: Option<String>,
    pub action: Action,
    pub expect: Expect,
}

/// What a step does (`EditStore`: edits of the store between steps, as a merchant makes them in
/// the Shopify admin).
#[derive(Debug, Clone)]
pub enum Action {
    Plan { options: PlanAction, only: Vec<(ItemKind, String)>, golden: Option<PathBuf> },
    Run { refresh: bool, options: RunAction, only: Vec<(ItemKind, String)>, injects: Vec<Injection> },
    Deactivate,
    Activate,
    Replay { snapshots: Vec<PathBuf>, goldens: PathBuf, format: GoldenFormat, run: bool },
    EditStore(Vec<StoreEdit>),
    Import { by: MatchBy, dry_run: bool },
    Drift { detailed_exitcode: bool },
}

/// A resolved [`Inject`].
#[derive(Debug, Clone)]
pub struct Injection {
    pub after_batches: u32,
    pub files: Vec<PathBuf>,
    pub stage: Option<String>,
}

impl Action {
    /// The action's key in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Plan { .. } => "plan",
            Action::Run { refresh: false, .. } => "run",
            Action::Run { refresh: true, .. } => "refresh",
            Action::Deactivate => "deactivate",
            Action::Activate => "activate",
            Action::Replay { .. } => "replay",
            Action::EditStore(_) => "edit_store",
            Action::Import { .. } => "import",
            Action::Drift { .. } => "drift",
        }
    }

    /// Whether the action adopts store items (and so has an adoption report).
    pub fn adopts(&self) -> bool {
        matches!(
            self,
            Action::Import { .. } | Action::Run { refresh: false, options: RunAction { adopt: Some(_), .. }, .. }
        )
    }

    /// Whether the action exports (and so has a run and exported changes).
    pub fn exports(&self) -> bool {
        matches!(self, Action::Run { .. } | Action::Replay { run: true, .. })
    }

    /// Whether the step ends with the process gone (no exit code).
    pub fn crashes(&self) -> bool {
        matches!(self, Action::Run { options, .. } if options.crash_after_batches.is_some())
    }
}

impl Step {
    /// The action and the step's name: `plan "after the rename"`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} \"{n}\"", self.action.name()),
            None => self.action.name().to_string(),
        }
    }
}

/// Why a scenario file could not be loaded: its diagnostics, rendered with source snippets.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub diagnostics: Diagnostics,
    pub source: Option<String>,
}

impl LoadError {
    pub fn render(&self, color: bool) -> String {
        self.diagnostics.iter().map(|d| d.render_styled(self.source.as_deref(), color)).collect()
    }
}

/// Reads, validates and resolves the scenario at `path`; every problem is reported at once.
pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let mut diagnostics = Diagnostics::default();
            diagnostics.push(Diagnostic::error(path, None, format!("cannot read the scenario: {e}")));
            return Err(LoadError { diagnostics, source: None });
        }
    };
    let fail = |diagnostics: Diagnostics| LoadError { diagnostics, source: Some(text.clone()) };
    let doc = yaml::parse(path, &text).map_err(fail)?;
    let (schema, validator) = schema();
    let mut diags = validate_with(schema, validator, path, &doc.value, &doc.spans);
    if diags.has_errors() {
        diags.sort();
        return Err(fail(diags));
    }
    let raw: RawScenario = serde_yaml::from_value(doc.yaml).map_err(|e| {
        let mut d = Diagnostics::default();
        d.push(
            Diagnostic::error(
                path,
                None,
                format!("internal error: the schema accepts this scenario but catsync cannot read it: {e}"),
            )
            .with_hint("please report this with the scenario file"),
        );
        fail(d)
    })?;
    let scenario = resolve(path, raw, &doc.spans, &mut diags);
    diags.sort();
    match scenario {
        Some(s) if !diags.has_errors() => Ok(s),
        _ => Err(fail(diags)),
    }
}

/// Resolves paths and checks what the schema cannot: one action per step, files that exist,
/// expectations that fit the action.
fn resolve(path: &Path, raw: RawScenario, spans: &SpanIndex, diags: &mut Diagnostics) -> Option<Scenario> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut cx = Resolver { path, dir, spans, diags };
    let pipeline = cx.existing("/pipeline", &raw.pipeline);
    let mut steps = Vec::new();
    for (i, step) in raw.steps.into_iter().enumerate() {
        if let Some(s) = cx.step(i, step) {
            steps.push(s);
        }
    }
    Some(Scenario {
        file: path.to_path_buf(),
        description: raw.description,
        pipeline: pipeline?,
        sandbox: raw.sandbox,
        steps,
    })
}

struct Resolver<'a> {
    path: &'a Path,
    dir: &'a Path,
    spans: &'a SpanIndex,
    diags: &'a mut Diagnostics,
}

impl Resolver<'_> {
    fn error(&mut self, pointer: &str, message: String, hint: Option<String>) {
        let pos = self.spans.value(pointer);
        self.diags.push(Diagnostic::error(self.path, pos, message).with_hint_opt(hint));
    }

    fn error_at_key(&mut self, pointer: &str, message: String, hint: Option<String>) {
        let pos = self.spans.key(pointer);
        self.diags.push(Diagnostic::error(self.path, pos, message).with_hint_opt(hint));
    }

    /// A file relative to the scenario, which must exist.
    fn existing(&mut self, pointer: &str, rel: &str) -> Option<PathBuf> {
        let full = self.dir.join(rel);
        if full.is_file() {
            return Some(full);
        }
        self.error(
            pointer,
            format!("`{rel}` does not exist (looked for `{}`)", full.display()),
            Some("paths in a scenario are relative to the scenario file".to_string()),
        );
        None
    }

    fn files(&mut self, pointer: &str, files: &Files) -> Vec<PathBuf> {
        match files {
            Files::One(f) => self.existing(pointer, f).into_iter().collect(),
            Files::Many(fs) => {
                fs.iter().enumerate().filter_map(|(i, f)| self.existing(&format!("{pointer}/{i}"), f)).collect()
            }
        }
    }

    fn only(&mut self, pointer: &str, only: &[String]) -> Vec<(ItemKind, String)> {
        let mut out = Vec::new();
        for (i, item) in only.iter().enumerate() {
            match crate::model::parse_item(item) {
                Ok(v) => out.push(v),
                Err(e) => self.error(&format!("{pointer}/{i}"), e, None),
            }
        }
        out
    }

    fn step(&mut self, i: usize, raw: RawStep) -> Option<Step> {
        let at = format!("/steps/{i}");
        let actions: Vec<&str> = [
            ("plan", raw.plan.is_some()),
            ("run", raw.run.is_some()),
            ("refresh", raw.refresh.is_some()),
            ("deactivate", raw.deactivate.is_some()),
            ("activate", raw.activate.is_some()),
            ("replay", raw.replay.is_some()),
            ("edit_store", raw.edit_store.is_some()),
            ("import", raw.import.is_some()),
            ("drift", raw.drift.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
        let hint = "give each step one of `plan`, `run`, `refresh`, `deactivate`, `activate`, `replay`, `edit_store`, `import` or `drift` (`run: {}` runs with the defaults)";
        match actions.as_slice() {
            [] => {
                self.error_at_key(&at, format!("step {} has no action", i + 1), Some(hint.to_string()));
                return None;
            }
            [_] => {}
            [_, second, ..] => {
                self.error_at_key(
                    &format!("{at}/{second}"),
                    format!("step {} has more than one action: {}", i + 1, actions.join(", ")),
                    Some("split it into one step per action".to_string()),
                );
                return None;
            }
        }
        let source = raw.source.as_ref().map(|f| self.files(&format!("{at}/source"), f)).unwrap_or_default();
        let sources = raw
            .sources
            .iter()
            .map(|(stage, f)| (stage.clone(), self.files(&format!("{at}/sources/{}", yaml::escape_segment(stage)), f)))
            .collect();
        let pipeline = raw.pipeline.as_ref().and_then(|p| self.existing(&format!("{at}/pipeline"), p));
        let action = if let Some(options) = raw.plan {
            let only = self.only(&format!("{at}/plan/only"), &options.only);
            let golden = options.golden.as_ref().map(|g| self.dir.join(g));
            Action::Plan { options, only, golden }
        } else if let Some(replay) = raw.replay {
            let snapshots = self.snapshots(&format!("{at}/replay/sources"), &replay.sources);
            let format = replay.format.unwrap_or(GoldenFormat::Text);
            Action::Replay { snapshots, goldens: self.dir.join(&replay.goldens), format, run: replay.run }
        } else if let Some(edits) = raw.edit_store {
            Action::EditStore(edits)
        } else if let Some(import) = raw.import {
            Action::Import { by: import.by.unwrap_or(MatchBy::Handle), dry_run: import.dry_run }
        } else if let Some(drift) = raw.drift {
            Action::Drift { detailed_exitcode: drift.detailed_exitcode }
        } else if raw.deactivate.is_some() {
            Action::Deactivate
        } else if raw.activate.is_some() {
            Action::Activate
        } else {
            let (refresh, options) = match (raw.run, raw.refresh) {
                (Some(o), _) => (false, o),
                (None, o) => (true, o.unwrap_or_default()),
            };
            let key = if refresh { "refresh" } else { "run" };
            let only = self.only(&format!("{at}/{key}/only"), &options.only);
            let injects = match &options.inject {
                None => Vec::new(),
                Some(OneOrMany::One(inject)) => vec![self.injection(&format!("{at}/{key}/inject"), inject)],
                Some(OneOrMany::Many(list)) => list
                    .iter()
                    .enumerate()
                    .map(|(n, inject)| self.injection(&format!("{at}/{key}/inject/{n}"), inject))
                    .collect(),
            };
            Action::Run { refresh, options, only, injects }
        };
        self.check_expect(&at, &action, &raw.expect);
        Some(Step {
            number: i + 1,
            name: raw.name,
            source,
            sources,
            pipeline,
            patch: raw.patch,
            env: raw.env,
            action,
            expect: raw.expect,
        })
    }

    fn injection(&mut self, pointer: &str, inject: &Inject) -> Injection {
        Injection {
            after_batches: inject.after_batches,
            files: self.files(&format!("{pointer}/source"), &inject.source),
            stage: inject.stage.clone(),
        }
    }

    /// Replay snapshots: files or glob patterns, every match in file-name order.
    fn snapshots(&mut self, pointer: &str, sources: &Files) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (i, pattern) in sources.list().into_iter().enumerate() {
            let at = match sources {
                Files::One(_) => pointer.to_string(),
                Files::Many(_) => format!("{pointer}/{i}"),
            };
            let full = self.dir.join(pattern);
            let matched: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
                Err(e) => {
                    self.error(&at, format!("`{pattern}` is not a valid pattern: {e}"), None);
                    continue;
                }
            };
            if matched.is_empty() {
                self.error(
                    &at,
                    format!("no file matches `{pattern}`"),
                    Some("paths in a scenario are relative to the scenario file".to_string()),
                );
            }
            out.extend(matched);
        }
        out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        out.dedup();
        out
    }

    /// Expectations that the action cannot produce are mistakes in the scenario.
    fn check_expect(&mut self, at: &str, action: &Action, expect: &Expect) {
        let name = action.name();
        let mut misplaced = |key: &str, why: &str| {
            self.error_at_key(
                &format!("{at}/expect/{key}"),
                format!("`{key}` cannot be checked after `{name}`: {why}"),
                None,
            );
        };
        let has_changes = matches!(action, Action::Plan { .. } | Action::Run { .. } | Action::Replay { .. });
        if !has_changes {
            let counted = [
                ("changes", expect.changes.is_some()),
                ("changes_include", expect.changes_include.is_some()),
                ("created", expect.created.is_some()),
                ("updated", expect.updated.is_some()),
                ("archived", expect.archived.is_some()),
                ("deleted", expect.deleted.is_some()),
                ("skipped", expect.skipped.is_some()),
            ];
            for (key, _) in counted.iter().filter(|(_, set)| *set) {
                misplaced(key, "it neither plans nor exports");
            }
        }
        if !matches!(action, Action::Plan { .. } | Action::Replay { .. }) {
            if expect.warnings.is_some() {
                misplaced("warnings", "warnings belong to plans");
            }
            if expect.unchanged.is_some() {
                misplaced("unchanged", "unchanged items are counted by plans");
            }
        }
        if !action.exports() {
            if expect.run_status.is_some() {
                misplaced("run_status", "it does not run");
            }
            if expect.notes.is_some() {
                misplaced("notes", "notes belong to runs");
            }
        }
        if !action.adopts() {
            if expect.adopted.is_some() {
                misplaced("adopted", "it adopts nothing (`import`, or `run` with `adopt`, do)");
            }
            if expect.ambiguous.is_some() {
                misplaced("ambiguous", "it adopts nothing (`import`, or `run` with `adopt`, do)");
            }
        }
        if expect.drift.is_some() && !matches!(action, Action::Drift { .. }) {
            misplaced("drift", "drift is reported by `drift`");
        }
        if action.crashes() && expect.exit.is_some() {
            misplaced("exit", "a crashed process has no exit code (check `run_status: IN PROGRESS` instead)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn positioned_errors_for_unknown_keys_missing_files_and_misplaced_expectations() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p.yaml", "version: 1\n");
        let path = write(
            dir.path(),
            "s.yaml",
            "pipeline: p.yaml\nsteps:\n  - source: missing.json\n    plan: {}\n    expect: { run_status: PAUSED }\n  - activate: {}\n    run: {}\n  - deactivat: {}\n",
        );
        let err = load(&path).unwrap_err();
        let text = err.render(false).replace(&dir.path().display().to_string(), "DIR");
        assert!(text.contains("DIR/s.yaml:8:5: error: unknown key `deactivat`"), "{text}");
        assert!(text.contains("did you mean `deactivate`?"), "{text}");
        // Schema errors stop before the semantic checks; fix the typo to see them.
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace("deactivat:", "deactivate:")).unwrap();
        let text = load(&path).unwrap_err().render(false).replace(&dir.path().display().to_string(), "DIR");
        assert!(text.contains("DIR/s.yaml:3:13: error: `missing.json` does not exist"), "{text}");
        assert!(
            text.contains("DIR/s.yaml:5:15: error: `run_status` cannot be checked after `plan`: it does not run"),
            "{text}"
        );
        assert!(text.contains("DIR/s.yaml:6:5: error: step 2 has more than one action: run, activate"), "{text}");
    }

    #[test]
    fn counts_take_a_number_or_kinds_and_say_so_when_neither() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p.yaml", "version: 1\n");
        let path =
            write(dir.path(), "s.yaml", "pipeline: p.yaml\nsteps:\n  - plan: {}\n    expect: { created: many }\n");
        let text = load(&path).unwrap_err().render(false);
        assert!(text.contains("4:24: error: `created` must be an integer or a map, found a string"), "{text}");
        let path = write(
            dir.path(),
            "s.yaml",
            "pipeline: p.yaml\nsteps:\n  - plan: {}\n    expect: { created: { products: 1, colections: 2 } }\n",
        );
        let text = load(&path).unwrap_err().render(false);
        assert!(text.contains("error: unknown key `colections`"), "{text}");
        assert!(text.contains("did you mean `collections`?"), "{text}");
    }
}

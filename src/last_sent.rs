//! The documents an export sent last. The state keeps hashes, not documents: they are rebuilt
//! from the stored mirrors (what the last run read) with the current configuration, and with the
//! last run's pinned one when it differs, and a rebuilt document counts as sent only when its hash
//! is the one the export recorded — then its values are exactly what the store received. Used by
//! `explain` (the values before) and `drift` (what the store should still have).

use std::sync::Arc;

use crate::config::CompiledPipeline;
use crate::document::Document;
use crate::engine::{evaluate, Evaluation, Read};
use crate::stages::ItemKind;
use crate::state::Namespace;

/// The last run's renderings, with the configuration each was made with (`None`: the current).
pub struct LastSent {
    evaluations: Vec<(Option<CompiledPipeline>, Evaluation)>,
}

impl LastSent {
    /// Evaluates the stored mirrors with the current configuration, and with the last run's
    /// pinned one when it differs. Nothing is read from the sources.
    pub fn rebuild(pipeline: &CompiledPipeline, ns: &Namespace) -> LastSent {
        LastSent::from_stored(evaluate(pipeline, ns, Read::Stored).ok(), pipeline, ns)
    }

    /// [`LastSent::rebuild`] from an evaluation of the stored mirrors with the current
    /// configuration already made (an evaluation that read no new export nor changed table is
    /// one).
    pub fn from_stored(current: Option<Evaluation>, pipeline: &CompiledPipeline, ns: &Namespace) -> LastSent {
        let mut evaluations = Vec::new();
        if let Some(e) = current {
            evaluations.push((None, e));
        }
        let last = ns.runs().ok().and_then(|runs| runs.into_iter().last());
        if let Some(run) = last.filter(|r| r.pinned.digest != crate::plan::config_digest(pipeline)) {
            let env = crate::config::secret::ProcessEnv;
            // A configuration this catsync cannot read explains nothing: the current one stands.
            let compiled = run.pinned.raw.read().ok().and_then(|raw| {
                crate::config::compile_pinned(raw, &run.pinned.file, run.pinned.environment.as_deref(), &env).ok()
            });
            if let Some(pinned) = compiled {
                if let Ok(e) = evaluate(&pinned, ns, Read::Stored) {
                    evaluations.push((Some(pinned), e));
                }
            }
        }
        LastSent { evaluations }
    }

    /// The document export `export` last sent for an item whose record has `hash`, if it can be
    /// rebuilt.
    pub fn sent(
        &self,
        current: &CompiledPipeline,
        export: &str,
        (kind, id): (ItemKind, &str),
        hash: &str,
    ) -> Option<Arc<Document>> {
        self.evaluations.iter().find_map(|(pinned, evaluation)| {
            let pipeline = pinned.as_ref().unwrap_or(current);
            let idx = pipeline.stages.iter().position(|s| s.name == export)?;
            // The evaluation hashed every document it rendered: no second hash per item.
            let docs = evaluation.documents_for(pipeline, idx)?;
            let key = (kind, Arc::from(id));
            (docs.hashes.get(&key)? == hash).then(|| docs.rendered.docs.get(&key).cloned()).flatten()
        })
    }

    /// [`LastSent::sent`] as JSON.
    pub fn document(
        &self,
        current: &CompiledPipeline,
        export: &str,
        item: (ItemKind, &str),
        hash: &str,
    ) -> Option<serde_json::Value> {
        self.sent(current, export, item, hash).and_then(|d| serde_json::to_value(d.as_ref()).ok())
    }
}

//! Compiles raw pipeline types into a [`CompiledPipeline`]: environment overrides applied, stage
//! references resolved into a petgraph DAG, cycles found, each stage compiled in topological
//! order with its inputs' outputs, templates compiled, secrets resolved into handles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::raw::{Deletions, ExportOverride, ExportStatus, Parameters, RawPipeline, RawStage};
use super::secret::EnvSource;
use super::yaml::{escape_segment, SpanIndex};
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics};
use crate::schedule::{self, Cron, Problem, SyncWindow, Timing};
use crate::stages::{self, CompiledStage, Output, StageCx};
use crate::template::TemplateSet;

/// Run-time parameters with defaults applied.
#[derive(Debug, Clone)]
pub struct Params {
    pub export_status: ExportStatus,
    pub deletions: Deletions,
    pub tags: Vec<String>,
    pub families: Vec<String>,
    pub include_empty_categories: bool,
    pub batch_size: usize,
    pub max_errors: usize,
    pub max_delete_fraction: f64,
    pub poll_interval: Duration,
    /// Languages to export, default first; empty = the source's default language.
    pub languages: Vec<String>,
    /// When `catsync serve` may start runs: `schedule` and `sync_windows`.
    pub timing: Timing,
}

/// A compiled stage with its resolved inputs.
#[derive(Debug)]
pub struct Stage {
    pub name: String,
    pub type_name: &'static str,
    pub node: NodeIndex,
    pub compiled: CompiledStage,
    /// Its inputs, as indices into [`CompiledPipeline::stages`], in declaration order.
    pub inputs: Vec<usize>,
}

/// A pipeline ready to run. Only this form reaches the executor.
#[derive(Debug)]
pub struct CompiledPipeline {
    pub name: String,
    pub file: PathBuf,
    /// The selected environment (`--env`), if any.
    pub environment: Option<String>,
    pub params: Params,
    /// Stages by declaration order; `graph` node weights index into it.
    pub stages: Vec<Stage>,
    /// Data flows along edges: input → consumer.
    pub graph: DiGraph<usize, ()>,
    /// Stage indices in a topological order (inputs before consumers, ties by declaration order).
    pub order: Vec<usize>,
    pub templates: TemplateSet,
    /// The raw configuration with the environment applied (the basis of the pinned config).
    pub raw: RawPipeline,
}

impl CompiledPipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Names of the inputs of stage `idx`, in declaration order.
    pub fn inputs_of(&self, idx: usize) -> Vec<&str> {
        self.stages[idx].inputs.iter().map(|&i| self.stages[i].name.as_str()).collect()
    }

    /// The stage an export reads (its first input: a `map` stage), as an index.
    pub fn export_input(&self, export: usize) -> Option<usize> {
        self.stages[export].inputs.first().copied()
    }

    pub fn exports(&self) -> impl Iterator<Item = &Stage> {
        self.stages.iter().filter(|s| s.compiled.is_export())
    }
}

/// Everything compile needs besides the raw config.
pub struct CompileInput<'a> {
    pub file: &'a Path,
    pub spans: &'a SpanIndex,
    pub environment: Option<&'a str>,
    pub env: &'a dyn EnvSource,
}

/// Compiles `raw`; every problem is pushed to `diags` (warnings too). Returns `None` on errors.
pub fn compile(mut raw: RawPipeline, input: &CompileInput, diags: &mut Diagnostics) -> Option<CompiledPipeline> {
    let file = input.file;
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let n_errors_before = diags.count(crate::diagnostics::Severity::Error);

    let spans = apply_environment(&mut raw, input, diags);
    let input = &CompileInput { spans: &spans, ..*input };
    let params = compile_params(&raw.parameters, input, diags);

    // The graph: one node per stage, an edge per resolved input.
    let names: Vec<String> = raw.stages.keys().cloned().collect();
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..names.len()).map(|i| graph.add_node(i)).collect();
    for (idx, (name, stage)) in raw.stages.iter().enumerate() {
        for (i, input_name) in stage.inputs().iter().enumerate() {
            let pointer = format!("/stages/{}/inputs/{i}", escape_segment(name));
            let pos = input.spans.value(&pointer);
            if input_name == name {
                diags.push(
                    Diagnostic::error(file, pos, "a stage cannot read its own output")
                        .in_stage(Some(name))
                        .with_hint("a pipeline is a DAG: name another stage"),
                );
                continue;
            }
            match names.iter().position(|n| n == input_name) {
                Some(from) => {
                    if graph.find_edge(nodes[from], nodes[idx]).is_some() {
                        diags.push(
                            Diagnostic::error(file, pos, format!("input `{input_name}` is listed twice"))
                                .in_stage(Some(name)),
                        );
                    } else {
                        graph.add_edge(nodes[from], nodes[idx], ());
                    }
                }
                None => {
                    let hint = did_you_mean(input_name, names.iter().map(String::as_str)).or_else(|| {
                        Some(format!(
                            "the stages are {}",
                            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        ))
                    });
                    diags.push(
                        Diagnostic::error(file, pos, format!("unknown input `{input_name}`"))
                            .in_stage(Some(name))
                            .with_hint_opt(hint),
                    );
                }
            }
        }
    }

    if report_cycles(&graph, &names, input, diags) {
        return None;
    }
    let order = topological_order(&graph, &nodes);

    // Compile stages in order, each with its inputs' outputs.
    let mut templates = TemplateSet::new();
    let mut outputs: Vec<Option<Output>> = vec![None; names.len()];
    let mut compiled: Vec<Option<CompiledStage>> = (0..names.len()).map(|_| None).collect();
    for &idx in &order {
        let name = &names[idx];
        let stage = &raw.stages[idx];
        let inputs: Vec<(&str, &Output)> = stage
            .inputs()
            .iter()
            .filter_map(|n| {
                let i = names.iter().position(|x| x == n)?;
                Some((n.as_str(), outputs[i].as_ref()?))
            })
            .collect();
        let mut cx = StageCx {
            name,
            file,
            base_dir: &base_dir,
            spans: input.spans,
            diags,
            templates: &mut templates,
            env: input.env,
        };
        let (stage_compiled, output) = compile_stage(stage, &inputs, &mut cx);
        compiled[idx] = stage_compiled;
        outputs[idx] = Some(output);
    }

    // Whole-pipeline checks.
    let has_export = raw.stages.values().any(|s| matches!(s, RawStage::Shopify(_) | RawStage::JsonlExport(_)));
    if !has_export {
        diags.push(
            Diagnostic::error(file, input.spans.key("/stages"), "the pipeline has no export stage")
                .with_hint("add a `shopify` (or `jsonl_export`) stage reading the `map` stage"),
        );
    }
    // An unused stage is worth a warning only when the references themselves are fine.
    let references_ok = diags.count(crate::diagnostics::Severity::Error) == n_errors_before;
    for (idx, name) in names.iter().enumerate().filter(|_| references_ok) {
        let is_export = matches!(raw.stages[idx], RawStage::Shopify(_) | RawStage::JsonlExport(_));
        if !is_export && graph.neighbors_directed(nodes[idx], Direction::Outgoing).next().is_none() {
            diags.push(
                Diagnostic::warning(
                    file,
                    input.spans.key(&format!("/stages/{}", escape_segment(name))),
                    "this stage is not used by any other stage",
                )
                .in_stage(Some(name))
                .with_hint("remove it, or list it in the `inputs` of the stage that should read it"),
            );
        }
    }

    if diags.count(crate::diagnostics::Severity::Error) > n_errors_before {
        return None;
    }
    let resolved: Vec<Vec<usize>> = raw
        .stages
        .values()
        .map(|stage| stage.inputs().iter().filter_map(|n| names.iter().position(|x| x == n)).collect())
        .collect();
    let stages = names
        .into_iter()
        .zip(compiled)
        .zip(resolved)
        .enumerate()
        .map(|(idx, ((name, c), inputs))| {
            let type_name = raw.stages[idx].type_name();
            c.map(|compiled| Stage { name, type_name, node: nodes[idx], compiled, inputs })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(CompiledPipeline {
        name: raw.name.clone(),
        file: file.to_path_buf(),
        environment: input.environment.map(str::to_string),
        params,
        stages,
        graph,
        order,
        templates,
        raw,
    })
}

fn compile_stage(stage: &RawStage, inputs: &[(&str, &Output)], cx: &mut StageCx) -> (Option<CompiledStage>, Output) {
    fn wrap<T>(r: (Option<T>, Output), f: impl FnOnce(T) -> CompiledStage) -> (Option<CompiledStage>, Output) {
        (r.0.map(f), r.1)
    }
    match stage {
        RawStage::Saleslayer(c) => wrap(stages::saleslayer::compile(c, cx), CompiledStage::SalesLayer),
        RawStage::Csv(c) => wrap(stages::table::compile_csv(c, cx), CompiledStage::Table),
        RawStage::Jsonl(c) => wrap(stages::table::compile_jsonl(c, cx), CompiledStage::Table),
        RawStage::Join(c) => wrap(stages::join::compile(c, inputs, cx), CompiledStage::Join),
        RawStage::Filter(c) => wrap(stages::filter::compile(c, inputs, cx), CompiledStage::Filter),
        RawStage::Map(c) => wrap(stages::map::compile(c, inputs, cx), CompiledStage::Map),
        RawStage::Shopify(c) => wrap(stages::shopify::compile(c, inputs, cx), CompiledStage::Shopify),
        RawStage::JsonlExport(c) => wrap(stages::jsonl_export::compile(c, inputs, cx), CompiledStage::JsonlExport),
    }
}

/// Applies the selected environment's overrides to the export stages, checking every
/// environment's references along the way.
/// Returns the span index with the overridden settings pointing at their overrides.
fn apply_environment(raw: &mut RawPipeline, input: &CompileInput, diags: &mut Diagnostics) -> SpanIndex {
    let mut spans = input.spans.clone();
    let file = input.file;
    let stage_names: Vec<String> = raw.stages.keys().cloned().collect();
    for (env_name, overrides) in &raw.environments {
        for (stage_name, o) in overrides {
            let pointer = format!("/environments/{}/{}", escape_segment(env_name), escape_segment(stage_name));
            let d = |msg: String| Diagnostic::error(file, input.spans.key(&pointer), msg);
            match raw.stages.get(stage_name) {
                None => diags.push(
                    d(format!("environment `{env_name}` overrides unknown stage `{stage_name}`"))
                        .with_hint_opt(did_you_mean(stage_name, stage_names.iter().map(String::as_str))),
                ),
                Some(RawStage::Shopify(_)) if o.path.is_some() => diags.push(
                    d(format!(
                        "environment `{env_name}`: `path` does not apply to the `shopify` export `{stage_name}`"
                    ))
                    .with_hint("a `shopify` export takes `url`, `token` and `api_version`"),
                ),
                Some(RawStage::JsonlExport(_)) if o.url.is_some() || o.token.is_some() || o.api_version.is_some() => {
                    diags.push(d(format!(
                        "environment `{env_name}`: only `path` applies to the `jsonl_export` stage `{stage_name}`"
                    )))
                }
                Some(RawStage::Shopify(_) | RawStage::JsonlExport(_)) => {}
                Some(other) => diags.push(
                    d(format!("environment `{env_name}` overrides `{stage_name}`, a `{}` stage", other.type_name()))
                        .with_hint("environments override export stages (`shopify`, `jsonl_export`) only"),
                ),
            }
        }
    }
    let Some(selected) = input.environment else { return spans };
    if let Some(d) = unknown_environment(raw, Some(selected), file) {
        diags.push(d);
        return spans;
    }
    let overrides = raw.environments.get(selected).cloned().unwrap_or_default();
    for (stage_name, o) in overrides {
        apply_override(raw.stages.get_mut(&stage_name), &o);
        let (env, stage) = (escape_segment(selected), escape_segment(&stage_name));
        for key in ["url", "token", "api_version", "path"] {
            spans.alias(&format!("/stages/{stage}/{key}"), &format!("/environments/{env}/{stage}/{key}"));
        }
    }
    spans
}

/// The error of selecting (`--env`) an environment the pipeline does not declare.
pub fn unknown_environment(raw: &RawPipeline, selected: Option<&str>, file: &Path) -> Option<Diagnostic> {
    let selected = selected?;
    if raw.environments.contains_key(selected) {
        return None;
    }
    let known: Vec<&str> = raw.environments.keys().map(String::as_str).collect();
    let hint = did_you_mean(selected, known.iter().copied()).or_else(|| {
        Some(if known.is_empty() {
            "this pipeline declares no `environments`".to_string()
        } else {
            format!("the environments are {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
        })
    });
    Some(Diagnostic::error(file, None, format!("unknown environment `{selected}`")).with_hint_opt(hint))
}

fn apply_override(stage: Option<&mut RawStage>, o: &ExportOverride) {
    match stage {
        Some(RawStage::Shopify(s)) => {
            if let Some(url) = &o.url {
                s.url = url.clone();
            }
            if let Some(token) = &o.token {
                s.token = Some(token.clone());
            }
            if let Some(v) = &o.api_version {
                s.api_version = v.clone();
            }
        }
        Some(RawStage::JsonlExport(s)) => {
            if let Some(path) = &o.path {
                s.path = path.clone();
            }
        }
        _ => {}
    }
}

fn compile_params(p: &Parameters, input: &CompileInput, diags: &mut Diagnostics) -> Params {
    let poll_interval = schedule::parse_duration(&p.poll_interval).unwrap_or_else(|| {
        diags.push(Diagnostic::error(
            input.file,
            input.spans.value("/parameters/poll_interval"),
            format!("`{}` is not a duration", p.poll_interval),
        ));
        Duration::from_secs(30)
    });
    Params {
        export_status: p.export_status,
        deletions: p.deletions,
        tags: p.tags.clone(),
        families: p.families.clone(),
        include_empty_categories: p.include_empty_categories,
        batch_size: p.batch_size as usize,
        max_errors: p.max_errors as usize,
        max_delete_fraction: p.max_delete_fraction,
        poll_interval,
        languages: p.languages.clone().unwrap_or_default(),
        timing: compile_timing(p, input, diags),
    }
}

/// `schedule`, `timezone` and `sync_windows`: each cron expression, time zone and duration
/// checked where it is written (all of them, not the first only).
fn compile_timing(p: &Parameters, input: &CompileInput, diags: &mut Diagnostics) -> Timing {
    let zone = |name: &Option<String>| name.as_deref().map_or(Ok(jiff::tz::TimeZone::UTC), schedule::parse_timezone);
    let default_zone = checked(zone(&p.timezone), "/parameters/timezone", input, diags);
    let schedule = p.schedule.as_ref().and_then(|text| {
        let cron = checked(schedule::parse_cron(text), "/parameters/schedule", input, diags)?;
        Some(Cron::new(text, cron, default_zone.clone()?))
    });
    let mut windows = Vec::new();
    for (i, w) in p.sync_windows.iter().enumerate() {
        let at = |key: &str| format!("/parameters/sync_windows/{i}/{key}");
        let zone = match w.timezone {
            Some(_) => checked(zone(&w.timezone), &at("timezone"), input, diags),
            None => default_zone.clone(),
        };
        let cron = checked(schedule::parse_cron(&w.schedule), &at("schedule"), input, diags);
        let duration = checked(schedule::parse_window_duration(&w.duration), &at("duration"), input, diags);
        if let (Some(zone), Some(cron), Some(duration)) = (zone, cron, duration) {
            windows.push(SyncWindow { kind: w.kind, cron: Cron::new(&w.schedule, cron, zone), duration });
        }
    }
    Timing { schedule, windows }
}

/// The value of `result`, or `None` with its problem reported at `pointer`'s value.
fn checked<T>(result: Result<T, Problem>, pointer: &str, input: &CompileInput, diags: &mut Diagnostics) -> Option<T> {
    result
        .map_err(|e| diags.push(Diagnostic::error(input.file, input.spans.value(pointer), e.message).with_hint(e.hint)))
        .ok()
}

/// Reports each cycle once, as the path of stage names in data-flow order. True if any.
fn report_cycles(graph: &DiGraph<usize, ()>, names: &[String], input: &CompileInput, diags: &mut Diagnostics) -> bool {
    let mut found = false;
    for scc in tarjan_scc(graph) {
        if scc.len() < 2 {
            continue;
        }
        found = true;
        let members: std::collections::BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *members.iter().min_by_key(|n| graph[**n]).expect("non-empty component");
        // Walk forward inside the component until we come back to the start.
        let mut path = vec![start];
        let mut current = start;
        let mut seen = std::collections::BTreeSet::from([start]);
        loop {
            let mut next: Vec<NodeIndex> =
                graph.edges(current).map(|e| e.target()).filter(|t| members.contains(t)).collect();
            next.sort_by_key(|n| graph[*n]);
            if next.contains(&start) {
                path.push(start);
                break;
            }
            match next.into_iter().find(|n| !seen.contains(n)) {
                Some(n) => {
                    seen.insert(n);
                    path.push(n);
                    current = n;
                }
                None => break,
            }
        }
        let shown: Vec<&str> = path.iter().map(|n| names[graph[*n]].as_str()).collect();
        let first = &names[graph[start]];
        let pointer = format!("/stages/{}/inputs", escape_segment(first));
        diags.push(
            Diagnostic::error(
                input.file,
                input.spans.key(&pointer),
                format!("stages form a cycle: {}", shown.join(" -> ")),
            )
            .in_stage(Some(first))
            .with_hint("a pipeline is a DAG: remove one of these inputs"),
        );
    }
    found
}

/// Kahn's algorithm with declaration order as the tie-break, so output is deterministic.
fn topological_order(graph: &DiGraph<usize, ()>, nodes: &[NodeIndex]) -> Vec<usize> {
    let mut indegree: BTreeMap<usize, usize> =
        nodes.iter().map(|n| (graph[*n], graph.neighbors_directed(*n, Direction::Incoming).count())).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        indegree.iter().filter(|(_, d)| **d == 0).map(|(i, _)| *i).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(idx) = ready.pop_first() {
        order.push(idx);
        for next in graph.neighbors_directed(nodes[idx], Direction::Outgoing) {
            let d = indegree.get_mut(&graph[next]).expect("every node has a degree");
            *d -= 1;
            if *d == 0 {
                ready.insert(graph[next]);
            }
        }
    }
    order
}

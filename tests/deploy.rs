//! What ships beside the binary, checked against it: the example GitHub Actions workflow (every
//! `catsync` command it runs exists, with every flag it passes), the container image's
//! Dockerfile (multi-stage, locked build, slim non-root runtime, `catsync serve` listening
//! beyond loopback only by an explicit flag, the state on a volume) and the Kubernetes manifests
//! (the expected kinds, one replica per shard recreated rather than rolled, probes on the
//! controller's real health endpoints and port, non-root security contexts, every volume, claim,
//! secret and ConfigMap they name declared, the pipelines they carry valid).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::{repo, Test};

/// `catsync ARGS…` in a scratch directory.
fn catsync(args: &[&str]) -> crate::support::Output {
    Test::new().args(args).run()
}

/// Splits a shell line into words: quotes group and are removed, `#` starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.push(q);
                }
            }
            '#' if word.is_none() => break,
            c if c.is_whitespace() => out.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}

/// Each `catsync` invocation of a shell script (`catsync` where a command starts): its words
/// after `catsync`, up to the end of the command (a pipe, `&&`, `;`, a redirection).
fn invocations(script: &str) -> Vec<Vec<String>> {
    let script = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in script.lines() {
        let words = words(line);
        let mut i = 0;
        while i < words.len() {
            let command_position = i == 0
                || ["|", "||", "&&", ";", "do", "then", "else"].contains(&words[i - 1].as_str())
                || words[i - 1].ends_with(';');
            if words[i] == "catsync" && command_position {
                let args: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| !["|", "||", "&&", ";", ">", ">>", "2>&1"].contains(&w.as_str()))
                    .map(|w| w.trim_end_matches(';').to_string())
                    .collect();
                i += args.len();
                found.push(args);
            }
            i += 1;
        }
    }
    found
}

/// The command of `catsync ARGS` (its first word that is neither an option nor an option's
/// value), and the options it passes.
fn command_and_flags(args: &[String]) -> (String, Vec<String>) {
    let mut command = None;
    let mut flags = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with('-') {
            let flag = a.split('=').next().unwrap_or(a).to_string();
            skip = !a.contains('=') && ["--env", "--state", "--color", "--log-format"].contains(&flag.as_str());
            flags.push(flag);
        } else if command.is_none() {
            command = Some(a.clone());
        }
    }
    (command.unwrap_or_default(), flags)
}

/// Checks that `catsync COMMAND --help` succeeds and lists every flag.
fn assert_known(command: &str, flags: &[String], used_in: &str) {
    let help = catsync(&[command, "--help"]);
    assert_eq!(help.code, 0, "{used_in}: `catsync {command} --help` fails: {}", help.stderr);
    for flag in flags {
        let listed = help.stdout.match_indices(flag.as_str()).any(|(i, _)| {
            let next = help.stdout[i + flag.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '-')
        });
        assert!(listed, "{used_in}: `catsync {command}` has no `{flag}`:\n{}", help.stdout);
    }
}

#[test]
fn the_example_workflow_runs_commands_the_cli_has() {
    let path = repo().join("examples/github-actions/catsync-pull-request.yml");
    let workflow: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(workflow["on"]["pull_request"].is_mapping(), "it runs on pull requests");
    let mut commands = BTreeSet::new();
    let mut scripts = Vec::new();
    for (_, job) in workflow["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            if let Some(run) = step["run"].as_str() {
                scripts.push(run.to_string());
            }
        }
    }
    for script in &scripts {
        for args in invocations(script) {
            let (command, flags) = command_and_flags(&args);
            assert_known(&command, &flags, &format!("`catsync {}`", args.join(" ")));
            commands.insert((command, flags));
        }
    }
    let names: BTreeSet<&str> = commands.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["plan", "test", "validate"]), "{commands:?}");
    let (_, plan_flags) = commands.iter().find(|(c, _)| c == "plan").unwrap();
    for flag in ["--remote", "--token", "--format"] {
        assert!(plan_flags.contains(&flag.to_string()), "the plan is asked of the controller: {plan_flags:?}");
    }
    let all = scripts.join("\n");
    assert!(all.contains("--format markdown") && all.contains("gh pr comment"), "the markdown plan is posted");
    assert!(!all.contains("$CATSYNC_TOKEN") || all.contains("'${CATSYNC_TOKEN}'"), "the token goes by reference");
}

/// A Dockerfile's instructions: keyword and arguments, continuations joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// The image's user id, state directory and `catsync serve` arguments.
struct Image {
    uid: u64,
    state: String,
    cmd: Vec<String>,
}

fn image() -> Image {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let all = instructions(&text);
    let stages: Vec<usize> = all.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&all[stages[0]..stages[1]], &all[stages[1]..]);
    assert!(build[0].1.starts_with("rust:") && build[0].1.ends_with(" AS build"), "{:?}", build[0]);
    assert!(
        build.iter().any(|(k, a)| k == "RUN" && a.contains("cargo build --release --locked --bin catsync")),
        "built with the locked dependencies: {build:?}"
    );
    assert!(runtime[0].1.contains("-slim"), "a slim runtime image: {:?}", runtime[0]);
    assert!(
        runtime.iter().any(|(k, a)| k == "COPY" && a.starts_with("--from=build ")),
        "the runtime takes the binary from the build"
    );
    let arg =
        |keyword: &str| -> Vec<&String> { runtime.iter().filter(|(k, _)| k == keyword).map(|(_, a)| a).collect() };
    let json = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_else(|e| panic!("exec form: {s}: {e}"));
    let user = arg("USER");
    assert_eq!(user.len(), 1, "{user:?}");
    let uid: u64 = user[0].split(':').next().unwrap().parse().expect("a numeric user, checkable by runAsNonRoot");
    assert_ne!(uid, 0, "not root");
    assert_eq!(json(arg("ENTRYPOINT")[0]), ["catsync", "serve"]);
    let cmd = json(arg("CMD")[0]);
    let listen = cmd.iter().position(|a| a == "--listen").expect("the address given explicitly");
    assert_eq!(cmd[listen + 1], "0.0.0.0:8080");
    assert_eq!(arg("EXPOSE"), ["8080"]);
    let state =
        arg("ENV").iter().find_map(|a| a.strip_prefix("CATSYNC_STATE=")).expect("the state directory set").to_string();
    assert_eq!(json(arg("VOLUME")[0]), vec![state.clone()], "the state on a volume");
    let dockerignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for dir in ["target", ".git", ".catsync"] {
        assert!(dockerignore.lines().any(|l| l == dir), "the build context leaves out `{dir}`");
    }
    Image { uid, state, cmd }
}

#[test]
fn the_image_builds_locked_and_runs_catsync_serve_as_an_unprivileged_user() {
    let image = image();
    let (command, flags) = command_and_flags(&[vec!["serve".to_string()], image.cmd.clone()].concat());
    assert_known(&command, &flags, "the Dockerfile's CMD");
    assert!(image.state.starts_with('/'));
}

/// Every document of every manifest under `deploy/kubernetes`, with the file it is in.
fn manifests() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut out = Vec::new();
    for file in catsync::config::pipeline_files(&dir).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                out.push((name.clone(), value));
            }
        }
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_kubernetes_manifests_run_one_controller_per_shard_with_probes_on_its_health_endpoints() {
    let image = image();
    let all = manifests();
    let named = |kind: &str| -> BTreeMap<String, &Value> {
        all.iter().filter(|(_, v)| v["kind"] == kind).map(|(_, v)| (s(&v["metadata"]["name"]).to_string(), v)).collect()
    };
    let kinds: BTreeSet<&str> =
        all.iter().filter(|(f, _)| f != "kustomization.yaml").map(|(_, v)| s(&v["kind"])).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]));
    let (deployments, claims, secrets, maps, services) =
        (named("Deployment"), named("PersistentVolumeClaim"), named("Secret"), named("ConfigMap"), named("Service"));
    assert!(deployments.len() >= 2, "shards: {:?}", deployments.keys());
    let kustomization = all.iter().find(|(f, _)| f == "kustomization.yaml").map(|(_, v)| v).unwrap();
    let listed: BTreeSet<&str> = kustomization["resources"].as_sequence().unwrap().iter().map(s).collect();
    let files: BTreeSet<&str> = all.iter().map(|(f, _)| f.as_str()).filter(|f| *f != "kustomization.yaml").collect();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest");

    let mut claimed = BTreeSet::new();
    for (name, d) in &deployments {
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1, "{name}: one controller per shard");
        assert_eq!(spec["strategy"]["type"], "Recreate", "{name}: never two controllers on one state");
        let pod = &spec["template"]["spec"];
        let labels = &spec["template"]["metadata"]["labels"];
        for (k, v) in spec["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(&labels[s(k)], v, "{name}: the selector matches the pod");
        }
        let security = &pod["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        assert_eq!(security["runAsUser"].as_u64(), Some(image.uid), "{name}: the image's user");
        let containers: Vec<&Value> = pod["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_sequence().into_iter().flatten())
            .collect();
        for c in &containers {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}/{}", s(&c["name"]));
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}/{}", s(&c["name"]));
            assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{name}/{}", s(&c["name"]));
            assert_ne!(sc["runAsUser"].as_u64(), Some(0), "{name}/{}", s(&c["name"]));
        }
        let volumes: BTreeMap<&str, &Value> =
            pod["volumes"].as_sequence().unwrap().iter().map(|v| (s(&v["name"]), v)).collect();
        for c in &containers {
            for m in c["volumeMounts"].as_sequence().into_iter().flatten() {
                assert!(volumes.contains_key(s(&m["name"])), "{name}: volume `{}` declared", s(&m["name"]));
            }
        }
        for (volume, v) in &volumes {
            if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                assert!(claims.contains_key(claim), "{name}: claim `{claim}` declared");
                assert!(claimed.insert(claim.to_string()), "{name}: claim `{claim}` is another shard's");
            }
            if let Some(map) = v["configMap"]["name"].as_str() {
                assert!(maps.contains_key(map), "{name}: ConfigMap `{map}` declared");
            }
            if let Some(secret) = v["secret"]["secretName"].as_str() {
                let keys = &secrets[secret]["stringData"];
                for item in v["secret"]["items"].as_sequence().into_iter().flatten() {
                    assert!(!keys[s(&item["key"])].is_null(), "{name}: secret `{secret}` has `{}`", s(&item["key"]));
                }
            }
            assert!(!v["hostPath"].is_mapping(), "{name}: no host path ({volume})");
        }

        // The controller: `catsync serve` with options it has, on the port the probes ask.
        let catsync = containers.iter().find(|c| c["name"] == "catsync").expect("a `catsync` container");
        assert_eq!(catsync["image"], "catsync", "{name}: the image kustomization.yaml names");
        let args: Vec<String> = catsync["args"].as_sequence().unwrap().iter().map(|a| s(a).to_string()).collect();
        let (command, flags) = command_and_flags(&[vec!["serve".to_string()], args.clone()].concat());
        assert_known(&command, &flags, &format!("{name}'s args"));
        let listen = &args[args.iter().position(|a| a == "--listen").expect("--listen") + 1];
        let port: u64 = listen.strip_prefix("0.0.0.0:").expect("beyond loopback, explicitly").parse().unwrap();
        let ports = catsync["ports"].as_sequence().unwrap();
        let http = ports.iter().find(|p| p["name"] == "http").expect("a port named http");
        assert_eq!(http["containerPort"].as_u64(), Some(port), "{name}");
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &catsync[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name}: {probe}");
            assert!(get["port"] == "http" || get["port"].as_u64() == Some(port), "{name}: {probe} on the port");
        }
        let mounts: BTreeMap<&str, &str> = catsync["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| (s(&m["mountPath"]), s(&m["name"])))
            .collect();
        let state = mounts.get(image.state.as_str()).unwrap_or_else(|| panic!("{name}: the state dir mounted"));
        assert!(volumes[state]["persistentVolumeClaim"].is_mapping(), "{name}: the state on a claim");
        let token = &args[args.iter().position(|a| a == "--token-file").expect("a token") + 1];
        let under = |path: &str| mounts.iter().find(|(m, _)| Path::new(path).starts_with(m)).map(|(_, v)| *v);
        assert!(volumes[under(token).expect("the token mounted")]["secret"].is_mapping(), "{name}");
        let dir = &args[0];
        let pipelines = under(dir).unwrap_or_else(|| panic!("{name}: `{dir}` mounted"));
        let source = volumes[pipelines];
        assert!(source["configMap"].is_mapping() || source["emptyDir"].is_mapping(), "{name}: {source:?}");
        if source["emptyDir"].is_mapping() {
            assert!(
                containers.iter().any(|c| s(&c["image"]).contains("git-sync")),
                "{name}: an emptyDir of pipelines is filled by git-sync"
            );
        }
        let service = services.values().find(|v| v["spec"]["selector"] == spec["selector"]["matchLabels"]);
        assert_eq!(service.expect("a Service per shard")["spec"]["ports"][0]["targetPort"], "http", "{name}");
    }
    assert_eq!(claimed.len(), claims.len(), "every claim is a shard's state");

    // The pipelines a ConfigMap carries are valid, in the environment the controller runs.
    for (map, v) in &maps {
        let mut test = Test::new().args(["validate", "--no-secrets", "--env", "production"]);
        for (file, text) in v["data"].as_mapping().unwrap() {
            test = test.file(s(file), s(text)).args([s(file)]);
        }
        let out = test.env("SHOPIFY_STORE_EU", "https://example.myshopify.com").run();
        assert_eq!(out.code, 0, "{map}: {}", out.stderr);
    }

    // The probes' paths answer on a running controller.
    let dir = Test::new().file("pipelines/.keep", "");
    let mut serve = crate::serve::Serve::start(dir.path(), &[]);
    serve.wait("ready", 30, |s| (s.get("/readyz").0 == 200).then_some(()));
    assert_eq!(serve.get("/healthz").0, 200);
}

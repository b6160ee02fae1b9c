//! Checks of every file under deploy/. The Kubernetes manifests and the
//! rendered Helm chart are validated against the Kubernetes API schemas
//! (`kubernetes-validate`) and against each other. The systemd unit goes
//! through `systemd-analyze`, the Grafana dashboard is checked against the
//! metrics cfscrub exports and by `promtool`, and the Dockerfile by its
//! structure.
//!
//! With CI=true a missing tool fails the test; elsewhere the test is
//! skipped with a message. scripts/setup-test-deps.sh installs them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cfscrub::engine::Stats;
use cfscrub::observe::{Metrics, SourceType};
use cfscrub::source::follow::touch_rotation_labels;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CFSCRUB: &str = env!("CARGO_BIN_EXE_cfscrub");
/// Seconds of `cfscrub kafka --grace-period` when it is not given.
const DEFAULT_GRACE_PERIOD: u64 = 10;

fn deploy(path: &str) -> PathBuf {
    Path::new(ROOT).join("deploy").join(path)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Returns the path of `tool`, searched on PATH and in `$HOME/go/bin`
/// (where `go install` puts helm). Without it the test fails in CI and is
/// skipped elsewhere.
fn require(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join("go/bin"));
    }
    let found = dirs.iter().map(|dir| dir.join(tool)).find(|p| p.is_file());
    if found.is_none() {
        let message = format!(
            "{tool} not found on PATH or in $HOME/go/bin; run \
             scripts/setup-test-deps.sh"
        );
        assert!(!in_ci(), "{message}");
        eprintln!("skipping: {message}");
    }
    found
}

fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Validates `files` with `kubernetes-validate --strict`, which rejects
/// unknown fields too. It has no schema for the Prometheus Operator's
/// ServiceMonitor and only warns about it, so [`check_kafka`] checks that
/// one against the Service it selects.
fn kubernetes_validate(tool: &Path, files: &[&Path]) {
    let mut args = vec!["--strict"];
    let names: Vec<String> =
        files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let output = run(tool, &args, None);
    assert!(output.status.success(), "kubernetes-validate failed: {}", {
        describe(&output)
    });
    let text = String::from_utf8_lossy(&output.stdout);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("WARN"))
        .filter(|line| !line.contains("kind ServiceMonitor"))
        .collect();
    assert!(warnings.is_empty(), "kubernetes-validate warned: {warnings:?}");
}

/// Parses every document of a YAML stream, with PyYAML (which
/// kubernetes-validate brings), into JSON values.
fn parse_yaml(text: &str) -> Vec<Value> {
    let python = require("python3").expect("python3 is on every machine");
    let script = "import json, sys, yaml\n\
        docs = [d for d in yaml.safe_load_all(sys.stdin) if d]\n\
        print(json.dumps(docs))";
    let output = run(&python, &["-c", script], Some(text));
    assert!(output.status.success(), "YAML parse failed: {}", {
        describe(&output)
    });
    serde_json::from_slice(&output.stdout).unwrap()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| doc["kind"] == kind).collect()
}

fn one_of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

/// Returns the pod spec of a Pod or of a Deployment's or StatefulSet's
/// template.
fn pod_spec(doc: &Value) -> &Value {
    match doc["kind"].as_str() {
        Some("Pod") => &doc["spec"],
        Some("Deployment" | "StatefulSet") => &doc["spec"]["template"]["spec"],
        other => panic!("no pod spec in a {other:?}"),
    }
}

/// Returns the one Deployment or StatefulSet of `docs`.
fn workload(docs: &[Value]) -> &Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|doc| {
            doc["kind"] == "Deployment" || doc["kind"] == "StatefulSet"
        })
        .collect();
    assert_eq!(found.len(), 1, "expected one Deployment or StatefulSet");
    found[0]
}

fn container<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let containers = spec["containers"].as_array().expect("containers");
    containers
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?}"))
}

fn args(container: &Value) -> Vec<String> {
    let args = container["args"].as_array().expect("args");
    args.iter().map(|a| a.as_str().expect("string arg").to_owned()).collect()
}

/// Returns the value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// Returns whether every label of `selector` is in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("selector labels");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

/// Checks what both modes share: the subcommand, the metrics port that
/// the probes use, resources and a non-root, read-only container.
fn check_cfscrub_container(container: &Value, mode: &str) {
    let args = args(container);
    assert_eq!(args[0], mode, "first argument is the subcommand");
    let listen = flag_value(&args, "--metrics-listen").expect("metrics");
    let port: u64 = listen
        .strip_prefix("0.0.0.0:")
        .expect("metrics listen on every address, for probes and scrapes")
        .parse()
        .unwrap();
    let ports = container["ports"].as_array().expect("ports");
    let metrics = ports.iter().find(|p| p["name"] == "metrics").unwrap();
    assert_eq!(metrics["containerPort"], port, "metrics port");

    for (probe, path) in
        [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
    {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert!(
            get["port"] == "metrics" || get["port"] == port,
            "{probe} port is the metrics port"
        );
    }

    let resources = &container["resources"];
    for field in ["cpu", "memory"] {
        assert!(resources["requests"][field].is_string(), "request {field}");
    }
    assert!(resources["limits"]["memory"].is_string(), "memory limit");
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
}

/// Checks that the real binary accepts `args`: clap validates every
/// argument before `--help`, and exits 0 only if all are valid.
fn check_accepted(args: &[String]) {
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let output = run(Path::new(CFSCRUB), &with_help, None);
    assert!(output.status.success(), "cfscrub rejects {args:?}: {}", {
        describe(&output)
    });
}

/// Checks a sidecar Pod or Deployment: the application and cfscrub share
/// the log volume, cfscrub reads it read-only, follows paths inside it
/// and keeps its checkpoint on a writable volume.
fn check_sidecar(docs: &[Value]) {
    let workload = docs
        .iter()
        .find(|doc| doc["kind"] == "Pod" || doc["kind"] == "Deployment")
        .expect("a Pod or Deployment");
    let spec = pod_spec(workload);
    let app = container(spec, "app");
    let cfscrub = container(spec, "cfscrub");
    check_cfscrub_container(cfscrub, "follow");
    let args = args(cfscrub);
    check_accepted(&args);

    let volumes = spec["volumes"].as_array().expect("volumes");
    let log_volume = app["volumeMounts"][0]["name"].as_str().unwrap();
    let shared = volumes.iter().find(|v| v["name"] == log_volume).unwrap();
    assert!(shared["emptyDir"].is_object(), "logs are on an emptyDir");
    let mounts = cfscrub["volumeMounts"].as_array().expect("mounts");
    let logs = mounts.iter().find(|m| m["name"] == log_volume).unwrap();
    assert_eq!(logs["readOnly"], true, "cfscrub mounts the logs read-only");
    let log_dir = logs["mountPath"].as_str().unwrap();
    let paths: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|arg| arg.starts_with('/'))
        .filter(|arg| Some(arg.as_str()) != flag_value(&args, "--checkpoint"))
        .collect();
    assert!(!paths.is_empty(), "no path to follow");
    for path in paths {
        assert!(
            path.starts_with(&format!("{log_dir}/")),
            "followed path {path} is outside the log mount {log_dir}"
        );
    }
    if let Some(checkpoint) = flag_value(&args, "--checkpoint") {
        let writable = mounts.iter().any(|m| {
            m["readOnly"] != true
                && checkpoint.starts_with(m["mountPath"].as_str().unwrap())
        });
        assert!(writable, "checkpoint {checkpoint} not on a writable mount");
    }
}

/// Checks a consumer group: the Kafka flags, a grace period longer than
/// cfscrub's, and a PodDisruptionBudget, Service and ServiceMonitor that
/// select its pods.
fn check_kafka(docs: &[Value], expect_monitor: bool) {
    let deployment = workload(docs);
    let spec = pod_spec(deployment);
    let cfscrub = container(spec, "cfscrub");
    check_cfscrub_container(cfscrub, "kafka");
    let args = args(cfscrub);
    for flag in ["--brokers", "--group", "--input-topic", "--output-topic"] {
        assert!(flag_value(&args, flag).is_some(), "{flag} missing");
    }
    check_accepted(&args);
    let grace = flag_value(&args, "--grace-period")
        .map_or(DEFAULT_GRACE_PERIOD, |value| value.parse().unwrap());
    let termination = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        termination > grace,
        "terminationGracePeriodSeconds {termination} is not longer than \
         --grace-period {grace}"
    );
    let env: BTreeSet<&str> = cfscrub["env"]
        .as_array()
        .map(|vars| vars.iter().map(|v| v["name"].as_str().unwrap()).collect())
        .unwrap_or_default();
    for arg in &args {
        if let Some(start) = arg.find("$(") {
            let name =
                &arg[start + 2..arg[start..].find(')').unwrap() + start];
            assert!(env.contains(name), "{arg} names no env variable");
        }
    }

    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert!(selects(selector, pod_labels), "workload selects its pods");
    let budget = one_of_kind(docs, "PodDisruptionBudget");
    let budget_selector = &budget["spec"]["selector"]["matchLabels"];
    assert!(selects(budget_selector, pod_labels), "budget selects the pods");
    let service = one_of_kind(docs, "Service");
    assert!(
        selects(&service["spec"]["selector"], pod_labels),
        "Service selects the pods"
    );
    let service_ports = service["spec"]["ports"].as_array().unwrap();
    assert!(service_ports.iter().any(|p| p["targetPort"] == "metrics"));

    let monitors = of_kind(docs, "ServiceMonitor");
    assert_eq!(monitors.len(), usize::from(expect_monitor), "ServiceMonitor");
    for monitor in monitors {
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        let labels = &service["metadata"]["labels"];
        assert!(selects(selector, labels), "ServiceMonitor selects Service");
        let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
        assert!(!endpoints.is_empty(), "ServiceMonitor has no endpoint");
        for endpoint in endpoints {
            let named =
                service_ports.iter().any(|p| p["name"] == endpoint["port"]);
            assert!(named, "ServiceMonitor port is a Service port");
            assert_eq!(endpoint["path"], "/metrics");
        }
    }
}

#[test]
fn kubernetes_manifests_validate() {
    let Some(validate) = require("kubernetes-validate") else { return };
    let sidecar = deploy("kubernetes/sidecar.yaml");
    let group = deploy("kubernetes/consumer-group.yaml");
    let monitor = deploy("kubernetes/servicemonitor.yaml");
    kubernetes_validate(&validate, &[&sidecar, &group, &monitor]);
    let docs = parse_yaml(&std::fs::read_to_string(&sidecar).unwrap());
    check_sidecar(&docs);
    let annotations = &one_of_kind(&docs, "Pod")["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    let port = annotations["prometheus.io/port"].as_str().unwrap();
    assert_eq!(port, "9898", "annotated port is the metrics port");

    // The group applies without the Prometheus Operator's CRDs, so its
    // ServiceMonitor is in a file of its own.
    let group_text = std::fs::read_to_string(&group).unwrap();
    let mut docs = parse_yaml(&group_text);
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    docs.extend(parse_yaml(&std::fs::read_to_string(&monitor).unwrap()));
    check_kafka(&docs, true);
}

/// Renders the chart with `sets` (`--set` values) and returns the
/// manifests, after `helm lint` with the same values passed.
fn render_chart<S: AsRef<str>>(
    helm: &Path,
    name: &str,
    sets: &[S],
) -> (PathBuf, String) {
    let chart = deploy("helm/cfscrub").display().to_string();
    let mut lint = vec!["lint", "--strict", chart.as_str()];
    let mut template = vec!["template", "release", chart.as_str()];
    for set in sets {
        lint.extend(["--set", set.as_ref()]);
        template.extend(["--set", set.as_ref()]);
    }
    let output = run(helm, &lint, None);
    assert!(output.status.success(), "helm lint failed: {}", {
        describe(&output)
    });
    let output = run(helm, &template, None);
    assert!(output.status.success(), "helm template failed: {}", {
        describe(&output)
    });
    let text = String::from_utf8(output.stdout).unwrap();
    let path = std::env::temp_dir()
        .join(format!("cfscrub-chart-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

/// Returns the stderr of `helm template` with `sets`, which must fail.
fn render_chart_error(helm: &Path, sets: &[&str]) -> String {
    let chart = deploy("helm/cfscrub").display().to_string();
    let mut template = vec!["template", "release", chart.as_str()];
    for set in sets {
        template.extend(["--set", set]);
    }
    let output = run(helm, &template, None);
    assert!(!output.status.success(), "rendered {sets:?}: {}", {
        describe(&output)
    });
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the value of each `$(NAME)` variable of the cfscrub container
/// as the kubelet would set it: a stand-in for each Secret and the pod
/// name for a field reference.
fn container_env(container: &Value) -> Vec<(String, String)> {
    let vars = container["env"].as_array().cloned().unwrap_or_default();
    vars.iter()
        .map(|var| {
            let name = var["name"].as_str().unwrap().to_owned();
            let from = &var["valueFrom"];
            let value = if from["fieldRef"]["fieldPath"] == "metadata.name" {
                "release-cfscrub-0".to_owned()
            } else {
                assert!(from["secretKeyRef"].is_object(), "{name}: {var}");
                format!("stand-in-{}", from["secretKeyRef"]["key"])
            };
            (name, value)
        })
        .collect()
}

/// Starts `cfscrub` with the rendered member `args`, the variables
/// filled in, against a loopback port where no broker listens, and returns
/// its stderr after it exits. A member with complete librdkafka settings
/// fails only when it connects. A member with settings that librdkafka
/// rejects fails earlier, when it creates its clients.
fn run_member_without_broker(
    args: &[String],
    env: &[(String, String)],
) -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut member: Vec<String> = args
        .iter()
        .map(|arg| {
            env.iter().fold(arg.clone(), |arg, (name, value)| {
                arg.replace(&format!("$({name})"), value)
            })
        })
        .collect();
    for (flag, value) in
        [("--brokers", broker.as_str()), ("--metrics-listen", "127.0.0.1:0")]
    {
        let at = member.iter().position(|arg| arg == flag).unwrap();
        member[at + 1] = value.to_owned();
    }
    member.extend(["--connect-timeout".to_owned(), "2".to_owned()]);
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let output = run(Path::new(CFSCRUB), &member, None);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks that a rendered member with SASL settings starts its clients,
/// so the settings are complete, and fails only on the missing broker.
fn check_sasl_member(container: &Value) {
    let args = args(container);
    let settings: Vec<&str> = args
        .windows(2)
        .filter(|pair| pair[0] == "-X")
        .map(|pair| pair[1].split('=').next().unwrap())
        .collect();
    for needed in [
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
    ] {
        assert!(settings.contains(&needed), "-X {needed} missing: {args:?}");
    }
    let stderr = run_member_without_broker(&args, &container_env(container));
    assert!(
        stderr.contains("cannot reach the Kafka brokers"),
        "member failed before connecting: {stderr}"
    );
}

/// Splits a shell command into words: single quotes, double quotes and
/// backslash-newline continuations, as used in README.md.
fn shell_words(command: &str) -> Vec<String> {
    let joined = command.replace("\\\n", " ");
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in joined.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ' | '\n' | '\t') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Returns the `--set` values of each `helm install` command in the
/// README, by release name.
fn readme_helm_installs() -> Vec<(String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut installs = Vec::new();
    let mut rest = readme.as_str();
    while let Some(at) = rest.find("\nhelm install ") {
        let command = &rest[at + 1..];
        let end = command
            .match_indices('\n')
            .map(|(index, _)| index)
            .find(|&index| !command[..index].ends_with('\\'))
            .unwrap_or(command.len());
        let words = shell_words(&command[..end]);
        assert_eq!(words[3], "deploy/helm/cfscrub", "chart of {words:?}");
        let mut sets = Vec::new();
        for pair in words[4..].chunks(2) {
            assert_eq!(pair[0], "--set", "only --set in {words:?}");
            sets.push(pair[1].clone());
        }
        installs.push((words[2].clone(), sets));
        rest = &command[end..];
    }
    installs
}

#[test]
fn readme_helm_commands_deploy() {
    let Some(helm) = require("helm") else { return };
    let Some(validate) = require("kubernetes-validate") else { return };
    let installs = readme_helm_installs();
    assert_eq!(installs.len(), 2, "one command per mode: {installs:?}");
    for (name, sets) in &installs {
        let (path, text) = render_chart(&helm, name, sets.as_slice());
        kubernetes_validate(&validate, &[&path]);
        let docs = parse_yaml(&text);
        if sets.iter().any(|set| set == "mode=sidecar") {
            check_sidecar(&docs);
        } else {
            let monitor = sets
                .iter()
                .any(|s| s == "metrics.serviceMonitor.enabled=true");
            check_kafka(&docs, monitor);
            check_sasl_member(container(pod_spec(workload(&docs)), "cfscrub"));
        }
        std::fs::remove_file(path).unwrap();
    }
}

/// SASL settings with a protocol and a password but no mechanism or
/// username, which librdkafka cannot use.
const SASL_WITHOUT_MECHANISM: [&str; 4] = [
    "kafka.settings.security\\.protocol=SASL_SSL",
    "kafka.secretSettings[0].setting=sasl.password",
    "kafka.secretSettings[0].secretName=cfscrub-kafka",
    "kafka.secretSettings[0].secretKey=sasl-password",
];

#[test]
fn helm_chart_rejects_incomplete_sasl() {
    let Some(helm) = require("helm") else { return };
    let stderr = render_chart_error(&helm, &SASL_WITHOUT_MECHANISM);
    assert!(
        stderr.contains("missing sasl.mechanism in kafka.settings"),
        "{stderr}"
    );
    let mut scram = SASL_WITHOUT_MECHANISM.to_vec();
    scram.push("kafka.settings.sasl\\.mechanism=SCRAM-SHA-512");
    let stderr = render_chart_error(&helm, &scram);
    assert!(stderr.contains("missing sasl.username"), "{stderr}");
    let mut gssapi = SASL_WITHOUT_MECHANISM.to_vec();
    gssapi.push("kafka.settings.sasl\\.mechanism=GSSAPI");
    let stderr = render_chart_error(&helm, &gssapi);
    assert!(stderr.contains("invalid sasl.mechanism GSSAPI"), "{stderr}");
}

#[test]
fn helm_chart_rejects_missing_topics() {
    let Some(helm) = require("helm") else { return };
    let stderr = render_chart_error(&helm, &["kafka.inputTopics=null"]);
    assert!(stderr.contains("missing kafka.inputTopics"), "{stderr}");
}

/// A member without sasl.mechanism, which the chart rejects, fails when it
/// creates its clients, so [`check_sasl_member`] tells a complete member
/// from an incomplete one.
#[test]
fn member_without_sasl_mechanism_fails() {
    let args: Vec<String> = [
        "kafka",
        "--brokers",
        "kafka:9092",
        "--group",
        "cfscrub",
        "--input-topic",
        "logs",
        "--output-topic",
        "{topic}.redacted",
        "--metrics-listen",
        "0.0.0.0:9898",
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.password=$(CFSCRUB_KAFKA_SECRET_0)",
    ]
    .map(str::to_owned)
    .to_vec();
    let env = [("CFSCRUB_KAFKA_SECRET_0".to_owned(), "stand-in".to_owned())];
    let stderr = run_member_without_broker(&args, &env);
    assert!(stderr.contains("GSSAPI"), "{stderr}");
    assert!(!stderr.contains("cannot reach the Kafka brokers"), "{stderr}");
}

#[test]
fn helm_chart_renders_both_modes() {
    let Some(helm) = require("helm") else { return };
    let Some(validate) = require("kubernetes-validate") else { return };

    let (kafka, text) = render_chart(&helm, "kafka", &[] as &[&str]);
    kubernetes_validate(&validate, &[&kafka]);
    let docs = parse_yaml(&text);
    check_kafka(&docs, false);
    assert_eq!(workload(&docs)["kind"], "Deployment");

    let mut secret_settings = vec![
        "metrics.serviceMonitor.enabled=true",
        "kafka.settings.sasl\\.mechanism=SCRAM-SHA-256",
        "kafka.secretSettings[1].setting=sasl.username",
        "kafka.secretSettings[1].secretName=cfscrub-kafka",
        "kafka.secretSettings[1].secretKey=sasl-username",
    ];
    secret_settings.extend(SASL_WITHOUT_MECHANISM);
    let (secret, text) = render_chart(&helm, "secret", &secret_settings[..]);
    kubernetes_validate(&validate, &[&secret]);
    let docs = parse_yaml(&text);
    check_kafka(&docs, true);
    let cfscrub = container(pod_spec(workload(&docs)), "cfscrub");
    let secret_args = args(cfscrub);
    for expected in [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-256",
        "sasl.username=$(CFSCRUB_KAFKA_SECRET_1)",
        "sasl.password=$(CFSCRUB_KAFKA_SECRET_0)",
    ] {
        let found = secret_args.iter().any(|a| a == expected);
        assert!(found, "{expected} missing");
    }
    check_sasl_member(cfscrub);

    let (sidecar, text) = render_chart(&helm, "sidecar", &["mode=sidecar"]);
    kubernetes_validate(&validate, &[&sidecar]);
    let docs = parse_yaml(&text);
    check_sidecar(&docs);
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    let deployment = workload(&docs);
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1, "one copy of the app");
    for path in [kafka, secret, sidecar] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn helm_exactly_once_renders_statefulset() {
    let Some(helm) = require("helm") else { return };
    let Some(validate) = require("kubernetes-validate") else { return };
    let (exactly_once, text) =
        render_chart(&helm, "exactly-once", &["kafka.exactlyOnce=true"]);
    kubernetes_validate(&validate, &[&exactly_once]);
    let docs = parse_yaml(&text);
    check_kafka(&docs, false);
    let set = workload(&docs);
    assert_eq!(set["kind"], "StatefulSet", "stable pod names");
    let service = one_of_kind(&docs, "Service");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    let cfscrub = container(pod_spec(set), "cfscrub");
    let member_args = args(cfscrub);
    assert!(member_args.iter().any(|a| a == "--exactly-once"));
    let id = flag_value(&member_args, "--transactional-id").expect("id");
    assert_eq!(id, "cfscrub-cfscrub-$(POD_NAME)", "one id per pod");
    let env = container_env(cfscrub);
    let pod_name = ("POD_NAME".to_owned(), "release-cfscrub-0".to_owned());
    assert_eq!(env, vec![pod_name]);

    std::fs::remove_file(exactly_once).unwrap();
}

#[test]
fn helm_sidecar_configures_application() {
    let Some(helm) = require("helm") else { return };
    let Some(validate) = require("kubernetes-validate") else { return };
    let sets = [
        "mode=sidecar",
        "sidecar.app.image=registry.example.com/app:1",
        "sidecar.app.command=null",
        "sidecar.app.args={--log-file,/var/log/app/app.log}",
        "sidecar.app.env[0].name=LOG_LEVEL",
        "sidecar.app.env[0].value=info",
        "sidecar.app.ports[0].name=http",
        "sidecar.app.ports[0].containerPort=8080",
        "sidecar.app.livenessProbe.httpGet.path=/health",
        "sidecar.app.livenessProbe.httpGet.port=http",
        "sidecar.app.readinessProbe.httpGet.path=/ready",
        "sidecar.app.readinessProbe.httpGet.port=http",
        "sidecar.app.resources.requests.memory=256Mi",
        "sidecar.app.resources.limits.memory=1Gi",
        "sidecar.app.securityContext.runAsNonRoot=true",
    ];
    let (path, text) = render_chart(&helm, "sidecar-app", &sets);
    kubernetes_validate(&validate, &[&path]);
    std::fs::remove_file(path).unwrap();
    let docs = parse_yaml(&text);
    check_sidecar(&docs);

    let spec = pod_spec(workload(&docs));
    let app = container(spec, "app");
    assert_eq!(app["image"], "registry.example.com/app:1");
    assert!(app["command"].is_null(), "the image's own entrypoint runs");
    assert_eq!(app["args"][1], "/var/log/app/app.log");
    assert_eq!(app["env"][0]["name"], "LOG_LEVEL");
    assert_eq!(app["ports"][0]["containerPort"], 8080);
    assert_eq!(app["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(app["readinessProbe"]["httpGet"]["path"], "/ready");
    assert!(app["startupProbe"].is_null(), "no probe that was not set");
    assert_eq!(app["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(app["securityContext"]["runAsNonRoot"], true);

    // cfscrub keeps its own, smaller resources, not the application's or
    // those of kafka mode.
    let cfscrub = container(spec, "cfscrub");
    assert_eq!(cfscrub["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(cfscrub["resources"]["requests"]["cpu"], "50m");
}

#[test]
fn helm_chart_rejects_short_grace_period() {
    let Some(helm) = require("helm") else { return };
    let chart = deploy("helm/cfscrub").display().to_string();
    let output = run(
        &helm,
        &[
            "template",
            "release",
            &chart,
            "--set",
            "terminationGracePeriodSeconds=10",
        ],
        None,
    );
    assert!(!output.status.success(), "rendered: {}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid terminationGracePeriodSeconds 10"));
    let output = run(
        &helm,
        &["template", "release", &chart, "--set", "mode=filter"],
        None,
    );
    assert!(!output.status.success(), "rendered: {}", describe(&output));
}

/// Returns the unit's ExecStart= command, continuation lines joined, split
/// into words as systemd splits them (double quotes only, as used here).
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let mut words = Vec::new();
    let mut quoted = false;
    let mut word = String::new();
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let Some(analyze) = require("systemd-analyze") else { return };
    let unit =
        std::fs::read_to_string(deploy("systemd/cfscrub-follow.service"))
            .unwrap();
    let words = exec_start(&unit);
    assert_eq!(words[0], "/usr/local/bin/cfscrub");
    // systemd-analyze checks that the program exists, so the copy runs
    // the binary under test.
    let dir = std::env::temp_dir()
        .join(format!("cfscrub-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("cfscrub-follow.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/cfscrub", CFSCRUB))
        .unwrap();
    let copy_arg = copy.display().to_string();

    let output = run(&analyze, &["verify", &copy_arg], None);
    assert!(output.status.success(), "verify failed: {}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cfscrub-follow.service"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze: {complaints:?}");

    let output =
        run(&analyze, &["security", "--offline=true", &copy_arg], None);
    assert!(output.status.success(), "security: {}", describe(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| line.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    // systemd rates an exposure below 2 as "OK", the best grade that a
    // service with network access for its metrics can reach.
    assert!(exposure < 2.0, "exposure level {exposure}:\n{report}");
    std::fs::remove_dir_all(&dir).unwrap();

    for setting in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateUsers=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(setting), "{setting} missing");
    }
    let read_only = unit
        .lines()
        .find_map(|line| line.strip_prefix("ReadOnlyPaths="))
        .expect("ReadOnlyPaths=");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|word| {
            word.replace("${STATE_DIRECTORY}", "/var/lib/cfscrub")
                .replace("${LOGS_DIRECTORY}", "/var/log/cfscrub")
        })
        .collect();
    assert_eq!(args[0], "follow");
    check_accepted(&args);
    let globs: Vec<&String> =
        args.iter().filter(|a| a.contains('*')).collect();
    assert!(!globs.is_empty(), "no glob to follow");
    for glob in globs {
        assert!(
            glob.starts_with(&format!("{read_only}/")),
            "{glob} is outside ReadOnlyPaths={read_only}"
        );
    }
}

#[test]
fn systemd_output_readable_by_group() {
    let unit =
        std::fs::read_to_string(deploy("systemd/cfscrub-follow.service"))
            .unwrap();
    // A static user, because a dynamic one's LogsDirectory= is under
    // /var/log/private, which no log shipper but root can enter.
    let dynamic = unit.lines().any(|line| line.starts_with("DynamicUser="));
    assert!(!dynamic, "a dynamic user's output is readable by root only");
    for setting in [
        "User=cfscrub\n",
        "Group=cfscrub\n",
        "LogsDirectory=cfscrub\n",
        "LogsDirectoryMode=0750\n",
        "UMask=0027\n",
    ] {
        assert!(unit.contains(setting), "{setting} missing");
    }
    let words = exec_start(&unit);
    let output = flag_value(&words, "--output").expect("--output");
    assert_eq!(output, "${LOGS_DIRECTORY}/clean.log");
}

#[test]
fn systemd_metrics_local_by_default() {
    let unit =
        std::fs::read_to_string(deploy("systemd/cfscrub-follow.service"))
            .unwrap();
    // Without --metrics-listen, cfscrub listens on 127.0.0.1:9898, and the
    // unit lets only loopback reach it, as the unit and README document.
    let default: std::net::SocketAddr =
        cfscrub::observe::DEFAULT_METRICS_ADDR.parse().unwrap();
    assert!(default.ip().is_loopback(), "default listen address {default}");
    let words = exec_start(&unit);
    assert!(!words.iter().any(|word| word.starts_with("--metrics-listen")));
    assert!(!words.iter().any(|word| word == "--no-metrics"));
    assert!(unit.contains("IPAddressDeny=any\n"));
    assert!(unit.contains("IPAddressAllow=localhost\n"));
}

/// Returns every series name that cfscrub exports, with a series of every
/// metric created first, because the registry leaves out metrics that
/// have none.
fn exported_names() -> BTreeSet<String> {
    let metrics = Metrics::new().unwrap();
    let now = Stats {
        bytes_in: 1,
        bytes_out: 1,
        candidates: 1,
        findings: [[1; 4]; 6],
        redactions: [1; 6],
    };
    for source in [SourceType::Stdin, SourceType::Follow, SourceType::Kafka] {
        metrics.publish(source, &Stats::default(), &now);
        metrics.read_records.with_label_values(&[source.id()]).inc();
        metrics.written_records.with_label_values(&[source.id()]).inc();
    }
    metrics.kafka_consumed.with_label_values(&["logs", "0"]).inc();
    metrics.kafka_produced.with_label_values(&["logs", "0"]).inc();
    metrics.kafka_lag.with_label_values(&["logs", "0"]).set(1);
    touch_rotation_labels(&metrics);

    let text = String::from_utf8(metrics.encode()).unwrap();
    // Sample names, and family names from the TYPE lines: a histogram's
    // samples are its name with _bucket, _sum and _count.
    let mut names: BTreeSet<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    names.extend(text.lines().filter_map(|line| {
        let family = line.strip_prefix("# TYPE ")?;
        Some(family.split(' ').next()?.to_owned())
    }));
    // Every name defined in the metrics module must be among them, or a
    // metric was left out above and a query of it would be rejected.
    let source = std::fs::read_to_string(
        Path::new(ROOT).join("src/observe/metrics.rs"),
    )
    .unwrap();
    let defined = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with("cfscrub_"));
    for defined in defined {
        assert!(names.contains(defined), "{defined} missing from encode()");
    }
    names
}

/// Returns every `cfscrub_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("cfscrub_") {
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // A name is not part of a longer word such as a Rust path.
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// Collects every query of the dashboard: panel targets, in rows too,
/// and template variable queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            panels(&panel["panels"], out);
            if panel["type"] == "row" {
                continue;
            }
            let targets = panel["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "panel {} has no query",
                panel["title"]
            );
            for target in targets {
                out.push(target["expr"].as_str().expect("expr").to_owned());
            }
        }
    }
    let mut queries = Vec::new();
    panels(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            queries.push(query.to_owned());
        }
    }
    queries
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let text =
        std::fs::read_to_string(deploy("grafana/cfscrub.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["uid"], "cfscrub");
    let exported = exported_names();
    let queries = dashboard_queries(&dashboard);
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "query names no cfscrub metric: {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} is not exported: {query}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "cfscrub_read_bytes_total",
        "cfscrub_detections_total",
        "cfscrub_errors_total",
        "cfscrub_kafka_consumer_lag_records",
        "cfscrub_follow_rotations_total",
    ] {
        assert!(used.contains(needed), "dashboard does not show {needed}");
    }
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel id reused");
    }
}

#[test]
fn dashboard_queries_parse_in_promtool() {
    let Some(promtool) = require("promtool") else { return };
    let text =
        std::fs::read_to_string(deploy("grafana/cfscrub.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    // Grafana replaces its variables before a query reaches Prometheus.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in dashboard_queries(&dashboard).iter().enumerate() {
        let query = query
            .replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        let query = if query.starts_with("label_values(") {
            // A Grafana function, not PromQL: check the selector inside.
            let inner =
                &query["label_values(".len()..query.rfind(',').unwrap()];
            inner.to_owned()
        } else {
            query
        };
        let quoted = serde_json::to_string(&query).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{index}\n        expr: {quoted}\n"
        ));
    }
    let path = std::env::temp_dir()
        .join(format!("cfscrub-dashboard-rules-{}.yaml", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let output =
        run(&promtool, &["check", "rules", &path.display().to_string()], None);
    std::fs::remove_file(&path).unwrap();
    assert!(output.status.success(), "promtool: {}", describe(&output));
}

#[test]
fn dockerfile_builds_small_non_root_image() {
    let text = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    let stages: Vec<&&str> =
        lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "not a multi-stage build");
    assert!(stages[0].ends_with(" AS build"), "first stage is named build");
    assert!(stages.last().unwrap().contains("-slim"), "small runtime base");
    let last_stage =
        lines.iter().rposition(|line| line.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_stage..];
    let user = runtime
        .iter()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("numeric");
    assert_ne!(uid, 0, "runs as root");

    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=build ")));
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/cfscrub\"]"))
    );
    // Every file copied from the build context exists, and the ignore
    // file lets it into the context.
    let ignore =
        std::fs::read_to_string(deploy("Dockerfile.dockerignore")).unwrap();
    let included: Vec<&str> =
        ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    for line in &lines[..last_stage] {
        let Some(copy) = line.strip_prefix("COPY ") else { continue };
        let words: Vec<&str> = copy.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            let path = Path::new(ROOT).join(source);
            assert!(path.exists(), "COPY source {source} does not exist");
            let name = source.trim_end_matches('/');
            assert!(included.contains(&name), "{source} is ignored");
        }
    }
}

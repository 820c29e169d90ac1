//! `deploy/kubernetes/`: the manifests against Kubernetes' schemas (kubernetes-validate), the
//! PrometheusRule against the rule files it is generated from, its groups through promtool.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::TempDir;
use crate::promtool::promtool;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// kubernetes-validate, as `scripts/ensure-test-tools` installs it (or from PATH).
fn kubernetes_validate() -> PathBuf {
    let installed = repo("target/test-tools/kubernetes-validate/bin/kubernetes-validate");
    for candidate in [installed, PathBuf::from("kubernetes-validate")] {
        if Command::new(&candidate)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            return candidate;
        }
    }
    panic!(
        "kubernetes-validate not found: run `make test` (scripts/ensure-test-tools installs it from PyPI into target/test-tools)"
    );
}

/// Runs kubernetes-validate --strict on `file`: (passed, its output).
fn validate(file: &Path) -> (bool, String) {
    let output = Command::new(kubernetes_validate())
        .args(["--strict", "--no-warn"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success() && text.contains("passed"), text)
}

/// The `sidecars:` list of the chart values, as written.
fn values_sidecars() -> String {
    let values = read("deploy/kubernetes/fluxbase-values.yaml");
    let start = values
        .find("\nsidecars:\n")
        .expect("sidecars in the values")
        + 1;
    let block = &values[start + "sidecars:\n".len()..];
    // Up to the next top-level key, if any.
    let end = block
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| block[i..].starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(block.len());
    block[..end].to_owned()
}

/// `text` with `spaces` more spaces before each non-empty line.
fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("{}{l}\n", " ".repeat(spaces))
            }
        })
        .collect()
}

/// The value of the first `key: value` line after the line `section:` (`section` with its indent).
fn value_under(text: &str, section: &str, key: &str) -> String {
    let start = text
        .find(&format!("\n{section}:\n"))
        .unwrap_or_else(|| panic!("{section}"));
    text[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{section}.{key}"))
        .to_owned()
}

#[test]
fn the_chart_values_sidecar_is_a_valid_container_that_reads_its_replica_over_localhost() {
    let sidecars = values_sidecars();
    // The sidecar as the chart renders it: a container of the replica's pod, beside the
    // chart's `storage` volume.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: fluxbase-sidecar\nspec:\n  containers:\n{}  volumes:\n    - name: storage\n      persistentVolumeClaim:\n        claimName: fluxbase\n",
        indent(&sidecars, 2)
    );
    let dir = TempDir::new("kubernetes");
    let file = dir.path.join("pod.yaml");
    fs::write(&file, &pod).unwrap();
    let (passed, output) = validate(&file);
    assert!(passed, "{output}\n{pod}");

    // The validator bites: a misspelt probe field fails.
    let broken = pod.replacen("path: /livez", "pth: /livez", 1);
    assert_ne!(broken, pod);
    fs::write(&file, &broken).unwrap();
    let (passed, output) = validate(&file);
    assert!(
        !passed,
        "kubernetes-validate accepted a misspelt field: {output}"
    );

    for line in [
        "- --fluxbase.metrics-url=http://127.0.0.1:9090/metrics",
        "- --fluxbase.url=http://127.0.0.1:8080",
        "- --storage.probe=false",
        "path: /livez",
        "path: /readyz",
        "containerPort: 9745",
        "readOnly: true",
        "- name: storage",
    ] {
        assert!(
            sidecars.lines().any(|l| l.trim() == line),
            "sidecar lacks {line}"
        );
    }
    // The database settings Fluxbase reads: the same secret, host and pool size.
    let values = read("deploy/kubernetes/fluxbase-values.yaml");
    let secret = values
        .lines()
        .find_map(|l| l.strip_prefix("existingSecret: "))
        .expect("a top-level existingSecret");
    assert_eq!(
        sidecars.matches(&format!("name: {secret}\n")).count(),
        2,
        "user and password from {secret}"
    );
    for key in ["db-username", "db-password"] {
        assert!(sidecars.contains(&format!("key: {key}\n")), "{key}");
    }
    let host = value_under(&values, "externalDatabase", "host");
    let pool = value_under(&values, "config", "max_connections");
    let local_path = value_under(&values, "config", "local_path");
    assert!(sidecars.contains(&format!(
        "- name: FLUXBASE_DATABASE_HOST\n        value: {host}\n"
    )));
    assert!(sidecars.contains(&format!(
        "- name: FLUXBASE_DATABASE_MAX_CONNECTIONS\n        value: \"{pool}\"\n"
    )));
    assert!(sidecars.contains(&format!("- --storage.path={local_path}\n")));
    assert!(sidecars.contains(&format!("mountPath: {local_path}\n")));
    let metrics_port = value_under(&values, "  metrics", "port");
    assert_eq!(metrics_port, "9090");
}

#[test]
fn the_standalone_deployment_passes_kubernetes_validate_and_carries_the_same_sidecar() {
    let (passed, output) = validate(&repo("deploy/kubernetes/sidecar-deployment.yaml"));
    assert!(passed, "{output}");
    let deployment = read("deploy/kubernetes/sidecar-deployment.yaml");
    assert!(
        deployment.contains(&indent(&values_sidecars(), 6)),
        "sidecar-deployment.yaml's exporter container differs from fluxbase-values.yaml's sidecar"
    );
}

#[test]
fn the_pod_monitor_selects_the_pods_the_values_label_and_names_the_alerts_job() {
    let monitor = read("deploy/kubernetes/podmonitor.yaml");
    let values = read("deploy/kubernetes/fluxbase-values.yaml");
    let deployment = read("deploy/kubernetes/sidecar-deployment.yaml");
    let label = "fluxbase.io/exporter: sidecar";
    assert!(monitor.contains(&format!("    matchLabels:\n      {label}\n")));
    assert!(values.contains(&format!("podLabels:\n  {label}\n")));
    assert!(deployment.contains(&format!("        {label}\n")));
    assert!(monitor.contains("    - port: exporter\n"));
    assert!(values_sidecars().contains("      - name: exporter\n        containerPort: 9745\n"));
    // deploy/alerts.yml's ExporterDown and the dashboard select job="fluxbase-exporter".
    assert!(
        monitor.contains("          targetLabel: job\n          replacement: fluxbase-exporter\n")
    );
    assert!(read("deploy/alerts.yml").contains("up{job=\"fluxbase-exporter\"}"));
}

#[test]
fn the_prometheus_rule_is_generated_from_the_rule_files_and_its_groups_pass_promtool() {
    let generated = Command::new(repo("scripts/prometheus-rule"))
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let committed = read("deploy/kubernetes/prometheus-rule.yaml");
    assert!(
        String::from_utf8_lossy(&generated.stdout) == committed,
        "deploy/kubernetes/prometheus-rule.yaml is not the output of scripts/prometheus-rule: run `scripts/prometheus-rule > deploy/kubernetes/prometheus-rule.yaml`"
    );
    assert!(committed.contains("kind: PrometheusRule\n"));

    // The groups inside, back at the top level, pass promtool's checks and both rule tests.
    let start = committed.find("\nspec:\n  groups:\n").expect("spec.groups") + 1;
    let groups = format!(
        "groups:\n{}",
        committed[start + "spec:\n  groups:\n".len()..]
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect::<String>()
    );
    let dir = TempDir::new("prometheus-rule");
    for name in ["alerts.yml", "recording-rules.yml"] {
        fs::write(dir.path.join(name), &groups).unwrap();
    }
    for test in ["alerts.test.yml", "recording-rules.test.yml"] {
        fs::copy(repo(&format!("deploy/{test}")), dir.path.join(test)).unwrap();
    }
    let alerts = read("deploy/alerts.yml").matches("- alert: ").count();
    let records = read("deploy/recording-rules.yml")
        .matches("- record: ")
        .count();
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts.test.yml"],
        vec!["test", "rules", "recording-rules.test.yml"],
    ] {
        let output = Command::new(promtool())
            .args(&args)
            .current_dir(&dir.path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "promtool {args:?}: {text}");
        if args[0] == "check" {
            assert!(
                text.contains(&format!("SUCCESS: {} rules found", alerts + records)),
                "{text}"
            );
        }
    }
}

#[test]
fn every_flag_and_variable_the_sidecar_sets_is_one_the_exporter_documents() {
    let readme = read("README.md");
    let sidecars = values_sidecars();
    let mut flags = 0;
    for arg in sidecars
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
    {
        let flag = format!("--{}", arg.split('=').next().unwrap_or(arg));
        flags += 1;
        assert!(
            readme.contains(&format!("| `{flag}` |")),
            "the sidecar sets {flag}, which README's configuration table lacks"
        );
    }
    assert!(flags >= 5);
    let mut variables = 0;
    for name in sidecars
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: FLUXBASE_"))
    {
        variables += 1;
        // FLUXBASE_DATABASE_HOST and friends are named in the README as `_HOST` after the first.
        let suffix = name.strip_prefix("DATABASE").unwrap_or(name);
        assert!(
            readme.contains(&format!("FLUXBASE_{name}")) || readme.contains(&format!("`{suffix}`")),
            "the sidecar sets FLUXBASE_{name}, which the exporter does not read"
        );
    }
    assert_eq!(variables, 7);
}

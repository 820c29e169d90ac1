//! The documentation and the source agree with the catalogue.

use std::fs;
use std::path::Path;

use fluxbase_exporter::catalog;

#[test]
fn readme_metric_table_is_the_catalogue() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = catalog::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's metric table is out of date; replace it with:\n{table}"
    );
}

#[test]
fn readme_and_architecture_merge_tables_are_the_one_in_the_code() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = fluxbase_exporter::upstream::merge::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's merge table is out of date; replace it with:\n{table}"
    );
    let architecture =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    assert!(
        architecture.contains(&table),
        "ARCHITECTURE.md's merge table is out of date; replace it with:\n{table}"
    );
}

#[test]
fn readme_flag_table_lists_every_flag_with_its_environment_variable() {
    use clap::CommandFactory;
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for arg in fluxbase_exporter::config::Flags::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let env = arg
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = format!("| `--{long}` | `{env}` |");
        assert!(
            readme.contains(&row),
            "README.md lacks the flag row starting {row}"
        );
    }
}

#[test]
fn no_file_but_the_catalogue_spells_a_metric_name() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    visit(&src, &mut |path, text| {
        if path.ends_with("catalog.rs") {
            return;
        }
        for desc in catalog::all() {
            if text.contains(&format!("\"{}\"", desc.name)) {
                offenders.push(format!("{}: {}", path.display(), desc.name));
            }
        }
    });
    assert!(
        offenders.is_empty(),
        "metric names spelled outside src/catalog.rs: {offenders:?}"
    );
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path, &str)) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, f);
        } else if path.extension().is_some_and(|e| e == "rs") {
            f(&path, &fs::read_to_string(&path).unwrap());
        }
    }
}

//! Requirement ids: every `// REQ:` line of a test names ids listed in
//! `tests/REQUIREMENTS.md`, so a typo or a withdrawn id fails here. Prints the ids no test
//! names yet (the gap the validation pack reports).

use std::collections::BTreeSet;
use std::path::Path;

fn listed() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("REQUIREMENTS.md"))
            .expect("tests/REQUIREMENTS.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(str::trim)
        .filter(|id| !id.is_empty() && *id != "id" && !id.starts_with('-'))
        .map(str::to_string)
        .collect()
}

fn named_in(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            named_in(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sh") {
            let text = std::fs::read_to_string(&path).expect("read source");
            for line in text.lines() {
                let line = line.trim();
                let named = line
                    .strip_prefix("// REQ:")
                    .or_else(|| line.strip_prefix("# REQ:"));
                if let Some(ids) = named {
                    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
                        found.push((id.to_string(), path.display().to_string()));
                    }
                }
            }
        }
    }
}

#[test]
fn every_requirement_a_test_names_is_listed() {
    let listed = listed();
    assert!(
        listed.len() > 40,
        "requirements table read: {}",
        listed.len()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut named = Vec::new();
    for dir in ["tests", "api", "entity", "worker", "migration", "scripts"] {
        named_in(&root.join(dir), &mut named);
    }
    let unknown: Vec<_> = named
        .iter()
        .filter(|(id, _)| !listed.contains(id))
        .collect();
    assert!(
        unknown.is_empty(),
        "ids not in tests/REQUIREMENTS.md: {unknown:?}"
    );
    let covered: BTreeSet<&String> = named.iter().map(|(id, _)| id).collect();
    let open: Vec<&String> = listed.iter().filter(|id| !covered.contains(id)).collect();
    println!(
        "requirements: {} listed, {} named by tests; not yet named: {open:?}",
        listed.len(),
        covered.len()
    );
}

//! The layout holds: within each crate, the areas (the top-level modules: a folder such as
//! `chain/` or a file such as `append.rs`) import each other without a cycle, so each area
//! can be read knowing only the areas below it. Imports are read from the source text
//! (`crate::<area>` paths outside `#[cfg(test)]` modules); the crate root, which re-exports,
//! is not an area.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("readable source folder") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The area a file belongs to: its first path component below `src`, without `.rs`.
fn area_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("below src");
    let first = relative.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The areas a file's non-test code names through `crate::<area>` (comments aside).
fn imported_areas(text: &str, areas: &BTreeSet<String>) -> BTreeSet<String> {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = before_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if areas.contains(&name) {
            found.insert(name);
        }
    }
    found
}

/// The area graph of one crate's `src` folder.
fn area_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let roots = ["lib", "main"];
    let areas: BTreeSet<String> = files
        .iter()
        .map(|f| area_of(src, f))
        .filter(|a| !roots.contains(&a.as_str()))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let area = area_of(src, file);
        if roots.contains(&area.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        let edges = graph.entry(area.clone()).or_default();
        edges.extend(
            imported_areas(&text, &areas)
                .into_iter()
                .filter(|a| *a != area),
        );
    }
    graph
}

/// A cycle of the graph, if it has one, as the list of areas around it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_accepts_layers() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let areas: BTreeSet<String> = ["chain".to_string()].into();
    let text =
        "use crate::chain::X;\n/// see crate::batch\n#[cfg(test)]\nmod tests { use crate::batch; }";
    assert_eq!(imported_areas(text, &areas), areas);
}

#[test]
fn no_crate_of_the_workspace_has_an_import_cycle_between_its_areas() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for entry in std::fs::read_dir(&crates).expect("the crates folder") {
        let src = entry.expect("readable entry").path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = area_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{}: import cycle {}", src.display(), cycle.join(" -> "));
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} crates found below {}",
        crates.display()
    );
}

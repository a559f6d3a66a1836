//! The module layout's one rule, checked from the source: imports point down the layers of
//! `src/lib.rs`, never up, and no two modules (or two files of one folder) import each other,
//! directly or round a circle.
//!
//! It reads every `crate::...` path in `src/` (not `src/bin`, not `main.rs`), so a new upward
//! import fails here with the file and the path that made it. Run it alone, with the graph it
//! found printed: `cargo nextest run -j 2 --test layout --no-capture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &[
        "shutdown",
        "config",
        "protocol",
        "rate_limit",
        "auth",
        "admission",
    ],
    &["db", "storage"],
    &["realtime"],
    &["chat", "attachments"],
    &["state"],
    &["ws"],
    &["http"],
    &["server"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read src/");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Code without comments (`//` to the end of the line), so a doc comment naming a module is not
/// an import. String literals holding `//` do not occur next to `crate::` paths here.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::a::b` paths a file names, as (a, b) (b empty when the path stops at a), with
/// `use crate::{a, b::c}` groups expanded to their first components.
fn crate_paths(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                let first = ident(item);
                let second = item
                    .strip_prefix(&first)
                    .and_then(|r| r.strip_prefix("::"))
                    .map(ident)
                    .unwrap_or_default();
                if !first.is_empty() {
                    found.push((first, second));
                }
            }
        } else {
            let first = ident(after);
            let second = after
                .strip_prefix(&first)
                .and_then(|r| r.strip_prefix("::"))
                .map(ident)
                .unwrap_or_default();
            found.push((first, second));
        }
        rest = after;
    }
    found
}

/// Finds one circle in `graph`, as the list of nodes round it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn imports_point_down_the_layers_and_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    // Top-level module -> top-level modules it imports.
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Within a folder: file -> sibling files it imports (mod.rs, the folder's face, left out).
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let top = parts[0].clone();
        let own_layer = layer_of(&top).unwrap_or_else(|| {
            panic!(
                "src/{} is in no layer: add `{top}` to LAYERS",
                rel.display()
            )
        });
        let text = std::fs::read_to_string(file).expect("read a source file");
        let code = code_of(&text);
        let mut paths = crate_paths(&code);
        // `super::x` inside a folder names a sibling file.
        if parts.len() == 2 {
            let mut rest = code.as_str();
            while let Some(i) = rest.find("super::") {
                let after = &rest[i + "super::".len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                paths.push((top.clone(), name));
                rest = after;
            }
        }
        for (first, second) in paths {
            if first == top {
                let here = parts.get(1).cloned().unwrap_or_default();
                let folder = src.join(&top);
                let is_sibling = folder.join(format!("{second}.rs")).exists()
                    || folder.join(&second).join("mod.rs").exists();
                if parts.len() == 2
                    && here != "mod"
                    && !second.is_empty()
                    && is_sibling
                    && second != here
                {
                    siblings
                        .entry(format!("{top}/{here}"))
                        .or_default()
                        .insert(format!("{top}/{second}"));
                }
                continue;
            }
            let Some(their_layer) = layer_of(&first) else {
                continue; // an item of lib.rs itself, or a macro path
            };
            modules
                .entry(top.clone())
                .or_default()
                .insert(first.clone());
            if their_layer > own_layer {
                upward.push(format!(
                    "src/{} (layer {own_layer}, {top}) imports crate::{first} (layer {their_layer})",
                    rel.display()
                ));
            }
        }
    }
    println!("module dependencies (top-level):");
    for (from, to) in &modules {
        println!(
            "  {from} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    println!("file dependencies within folders:");
    for (from, to) in &siblings {
        println!(
            "  {from} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
    if let Some(cycle) = find_cycle(&modules) {
        panic!("module circle: {}", cycle.join(" -> "));
    }
    if let Some(cycle) = find_cycle(&siblings) {
        panic!("file circle within a folder: {}", cycle.join(" -> "));
    }
    println!("no upward import, no circle");
}

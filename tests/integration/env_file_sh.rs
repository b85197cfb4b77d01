//! cost-tags.env means the same to cost-prolog as to /bin/sh: for random lines, whatever
//! `env_file::parse` accepts, dash gives the variable the same value when it sources the
//! line (the admin timers still source the file with sh). Lines the parser refuses are
//! not compared: refusing is its answer to anything sh might read differently.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use cost_tags::node::env_file;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn dash() -> Option<PathBuf> {
    let found = support::process::find_program("dash");
    support::require("dash (apt-get install dash)", found.is_some());
    found
}

/// What dash makes of `line`: the value of V after sourcing it, None if sourcing failed.
fn sourced_by_dash(dash: &PathBuf, dir: &std::path::Path, line: &str) -> Option<String> {
    let file = dir.join("line.env");
    std::fs::write(&file, line).unwrap();
    let out = Command::new(dash)
        .args(["-c", r#". "$1" && printf %s "${V-unset}""#, "sh"])
        .arg(&file)
        .env_clear()
        .env("HOME", "/home-of-test")
        .current_dir(dir)
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
}

/// A value written the way a person (or an attacker) might: quotes, expansions,
/// escapes, comments, blanks, globs and tildes among ordinary characters.
fn raw_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec![
            "a", "Z", "0", "_", "-", ".", "/", ":", ",", "@", "%", "+", "=", "#", " ", "\t", "'", "\"", "$", "`", "\\",
            "~", "*", "?", "[", "]", "{", "}", ";", "&", "|", "<", ">", "(", ")", "!", "$HOME", "\\n", "é",
        ]),
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// A whole line: optional blanks and `export`, then `V=`, the value bare or quoted.
fn line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "  ", "\t", "export ", "export\t", " export  "]),
        prop::sample::select(vec!["", "'", "\""]),
        raw_value(),
        prop::sample::select(vec!["", " ", " # note", "#x", "\r"]),
    )
        .prop_map(|(lead, quote, value, tail)| format!("{lead}V={quote}{value}{quote}{tail}\n"))
}

#[test]
fn accepted_lines_mean_the_same_to_dash() {
    let Some(dash) = dash() else { return };
    let dir = tempfile::tempdir().unwrap();
    let accepted_count = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&line(), |line| {
            let (accepted, _) = env_file::parse(line.as_bytes());
            if let [only] = accepted.as_slice() {
                accepted_count.set(accepted_count.get() + 1);
                prop_assert_eq!(&only.name, "V");
                let by_dash = sourced_by_dash(&dash, dir.path(), &line);
                prop_assert_eq!(by_dash, Some(only.value.clone()), "line {:?}", line);
            }
            Ok(())
        })
        .unwrap();
    // Else the comparison proved nothing.
    let accepted = accepted_count.get();
    assert!(accepted >= 100, "only {accepted} of 600 random lines were accepted");
    eprintln!("{accepted} of 600 random lines accepted, each read the same by dash");
}

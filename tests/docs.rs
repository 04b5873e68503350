//! Docs are part of the feature: the man pages list exactly the flags `--help` shows,
//! every exit code and every option-file key; the README's exit-code table too.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use keepalived_mysql::config::{CLIENT_KEYS, SETTING_KEYS};
use keepalived_mysql::verdict::Class;

fn read(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The text of one `.SH` section of a roff page.
fn section(page: &str, name: &str) -> String {
    let start = page
        .find(&format!(".SH {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}"));
    let rest = &page[start + 5 + name.len()..];
    rest[..rest.find("\n.SH ").unwrap_or(rest.len())].to_string()
}

fn long_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name.trim_end_matches('-').to_string());
        }
    }
    out
}

#[test]
fn check_man_page_matches_help() {
    let help = Command::new(common::check_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let options = &help[help.find("Options:").unwrap()..help.find("Exit codes:").unwrap()];
    let from_help = long_flags(options);
    let page = read("man/keepalived-mysql-check.8");
    let from_man = long_flags(&section(&page, "OPTIONS").replace("\\-", "-"));
    assert_eq!(from_man, from_help, "man OPTIONS vs --help");
    assert!(from_help.len() > 20, "{from_help:?}");
}

#[test]
fn every_exit_code_is_documented_once() {
    let codes: BTreeSet<u8> = Class::ALL.iter().map(|c| c.code()).collect();
    let page = read("man/keepalived-mysql-check.8");
    let table = section(&page, "EXIT STATUS");
    let in_man: BTreeSet<u8> = table
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    assert_eq!(in_man, codes, "man EXIT STATUS");
    let readme = read("README.md");
    let in_readme: BTreeSet<u8> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(in_readme, codes, "README exit-code table");
}

#[test]
fn every_option_file_key_is_documented() {
    let page = read("man/keepalived-mysql.cnf.5");
    let mut documented = BTreeSet::new();
    for sec in ["CREDENTIALS", "SETTINGS"] {
        for l in section(&page, sec).lines() {
            if let Some(k) = l.strip_prefix(".B ") {
                documented.insert(k.to_string());
            }
        }
    }
    let known: BTreeSet<String> = CLIENT_KEYS
        .iter()
        .chain(SETTING_KEYS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(documented, known, "keepalived-mysql.cnf(5) keys");
    // And every setting key is a flag of the check.
    let help = Command::new(common::check_bin())
        .arg("--help")
        .output()
        .unwrap();
    let flags = long_flags(&String::from_utf8_lossy(&help.stdout));
    for k in SETTING_KEYS {
        assert!(flags.contains(*k), "--{k} missing from --help");
    }
}

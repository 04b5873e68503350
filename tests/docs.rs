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

fn help(bin: &Path) -> String {
    let out = Command::new(bin).arg("--help").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every binary: its man page's OPTIONS are exactly its --help flags, and its EXIT
/// STATUS table the codes its --help lists.
#[test]
fn man_pages_match_help() {
    for (bin, page) in [
        (common::check_bin(), "man/keepalived-mysql-check.8"),
        (common::restart_bin(), "man/keepalived-mysql-restart.8"),
        (common::notify_bin(), "man/keepalived-mysql-notify.8"),
    ] {
        let help = help(&bin);
        let exit_at = help.find("Exit codes:").expect("exit codes in --help");
        let from_help = long_flags(&help[help.find("Options:").unwrap()..exit_at]);
        let page_text = read(page);
        let from_man = long_flags(&section(&page_text, "OPTIONS").replace("\\-", "-"));
        assert_eq!(from_man, from_help, "{page} OPTIONS vs --help");
        assert!(from_help.len() > 20, "{from_help:?}");
        let help_codes: BTreeSet<u8> = help[exit_at + 11..]
            .split(", ")
            .filter_map(|c| c.trim().split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(
            exit_table(&page_text),
            help_codes,
            "{page} EXIT STATUS vs --help"
        );
    }
}

/// The operator's command: its man page's OPTIONS are the flags of all its
/// subcommands, and its EXIT STATUS the codes its --help lists.
#[test]
fn operator_man_page_matches_help() {
    let bin = common::notify_bin().with_file_name("keepalived-mysql");
    let mut from_help = BTreeSet::new();
    for sub in ["status", "switchover", "history", "reset", "lint"] {
        let out = Command::new(&bin).args([sub, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        from_help.extend(long_flags(&text[text.find("Options:").expect(sub)..]));
    }
    let top = help(&bin);
    from_help.extend(long_flags(
        &top[top.find("Options:").unwrap()..top.find("Exit codes:").unwrap()],
    ));
    let page_text = read("man/keepalived-mysql.1");
    let from_man = long_flags(&section(&page_text, "OPTIONS").replace("\\-", "-"));
    assert_eq!(from_man, from_help, "keepalived-mysql.1 OPTIONS vs --help");
    for sub in ["status", "switchover", "history", "reset", "lint"] {
        assert!(
            page_text.contains(&format!(".B {sub}\n")),
            "{sub} described"
        );
    }
    let help = help(&bin);
    let exit_at = help.find("Exit codes:").expect("exit codes in --help");
    let help_codes: BTreeSet<u8> = help[exit_at + 11..]
        .split(", ")
        .filter_map(|c| c.trim().split(' ').next()?.parse().ok())
        .collect();
    assert!(help_codes.len() > 10, "{help_codes:?}");
    assert_eq!(exit_table(&page_text), help_codes, "EXIT STATUS vs --help");
}

fn exit_table(page: &str) -> BTreeSet<u8> {
    section(page, "EXIT STATUS")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

#[test]
fn every_exit_code_is_documented_once() {
    let codes: BTreeSet<u8> = Class::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(
        exit_table(&read("man/keepalived-mysql-check.8")),
        codes,
        "man EXIT STATUS"
    );
    let readme = read("README.md");
    let table = &readme[readme.find("## Exit codes").unwrap()..];
    let table = &table[..table[3..]
        .find("\n## ")
        .map(|i| i + 3)
        .unwrap_or(table.len())];
    let in_readme: BTreeSet<u8> = table
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
    for sec in ["CREDENTIALS", "TLS AND MYSQL 8 AUTHENTICATION", "SETTINGS"] {
        for l in section(&page, sec).lines() {
            if let Some(k) = l.strip_prefix(".B ") {
                documented.insert(k.replace("\\-", "-"));
            }
            // `.BR a ", " b`: several keys under one heading.
            if let Some(ks) = l.strip_prefix(".BR ").filter(|k| k.contains("\", \"")) {
                for k in ks.split("\", \"") {
                    documented.insert(k.trim().replace("\\-", "-"));
                }
            }
        }
    }
    let known: BTreeSet<String> = CLIENT_KEYS
        .iter()
        .chain(SETTING_KEYS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(documented, known, "keepalived-mysql.cnf(5) keys");
    // And every setting key is a flag of some binary.
    let flags: BTreeSet<String> = [
        common::check_bin(),
        common::restart_bin(),
        common::notify_bin(),
    ]
    .iter()
    .flat_map(|b| long_flags(&help(b)))
    .collect();
    for k in SETTING_KEYS {
        assert!(flags.contains(*k), "--{k} missing from every --help");
    }
}

/// The shipped option file documents real keys: uncommented, it loads for every program.
#[test]
fn shipped_config_lists_only_real_keys() {
    let text = read("packaging/keepalived-mysql.cnf");
    let mut uncommented = String::new();
    let mut keys = 0;
    for line in text.lines() {
        match line.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") || rest.trim_end().ends_with('=') => {
                keys += 1;
                uncommented.push_str(rest);
            }
            _ => uncommented.push_str(line),
        }
        uncommented.push('\n');
    }
    assert!(keys > 25, "{keys}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k.cnf");
    common::write_private(&f, &uncommented);
    let entries = keepalived_mysql::optfile::read_file(&f).unwrap();
    use keepalived_mysql::config::{CheckSettings, NotifySettings, Program, RestartSettings};
    let loads = [
        CheckSettings::from_entries(&entries, &[]).map(|_| ()),
        RestartSettings::from_entries(&entries, &[]).map(|_| ()),
        NotifySettings::from_entries(&entries, &[]).map(|_| ()),
    ];
    for (program, r) in ["check", "restart", "notify"].iter().zip(loads) {
        r.unwrap_or_else(|e| panic!("{program}: {e}"));
    }
}

/// The MySQL-in-a-container sample loads for every program, over TCP with TLS.
#[test]
fn container_sample_loads() {
    use keepalived_mysql::config::{
        CheckSettings, Endpoint, NotifySettings, Program, RestartSettings,
    };
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k.cnf");
    common::write_private(&f, &read("keepalived/keepalived-mysql-container.cnf"));
    let entries = keepalived_mysql::optfile::read_file(&f).unwrap();
    let check = CheckSettings::from_entries(&entries, &[]).unwrap();
    assert_eq!(
        check.endpoint(),
        Endpoint::Tcp("127.0.0.1".parse().unwrap(), 3306)
    );
    assert_eq!(check.tls.mode, keepalived_mysql::tls::SslMode::Required);
    let restart = RestartSettings::from_entries(&entries, &[]).unwrap();
    assert_eq!(
        restart.restart_command.as_deref(),
        Some(
            &[
                "/usr/bin/docker".to_string(),
                "restart".into(),
                "mysql".into()
            ][..]
        )
    );
    NotifySettings::from_entries(&entries, &[]).unwrap();
}

use super::*;
use std::net::IpAddr;

#[test]
fn account_names_come_from_a_conservative_alphabet() {
    for ok in [
        "alice",
        "Bob-2",
        "joe@acme.example",
        "a.b_c",
        "x",
        &"x".repeat(64),
    ] {
        validate_account_name(ok).unwrap();
        assert_eq!(folder_name(ok), ok, "a valid name is its own folder");
    }
    for bad in [
        "",
        ".",
        "..",
        ".hidden",
        "**",
        "//",
        ".:",
        "*",
        "/",
        "?",
        "a/b",
        "a\\b",
        "DOMAIN\\bob",
        "has space",
        "tab\t",
        "nl\n",
        "ünïcødé",
        "a:b",
        "a|b",
        &"x".repeat(65),
    ] {
        assert!(validate_account_name(bad).is_err(), "{bad:?}");
    }
    let err = validate_account_name("**").unwrap_err().to_string();
    assert!(err.contains("only letters"), "{err}");
    validate_group_name("Staff team").unwrap_err();
    validate_group_name("staff").unwrap();
}

#[test]
fn names_from_elsewhere_map_to_safe_folder_names() {
    assert_eq!(folder_name("ACME\\joe"), "ACME.joe");
    assert_eq!(folder_name("joe@acme"), "joe@acme");
    assert_eq!(folder_name("a\\b/c:d*e?f\"g<h>i|j"), "a.b.c.d.e.f.g.h.i.j");
    assert_eq!(folder_name("ünï cødé"), "_n__c_d_");
    // Names whose old mapping was `..` or `.`: the data dir or the files root.
    for (name, folder) in [
        ("**", "_."),
        ("//", "_."),
        (".:", "_."),
        ("*", "_"),
        ("/", "_"),
        ("?", "_"),
        ("..", "_."),
        (".", "_"),
        ("", "_"),
    ] {
        assert_eq!(folder_name(name), folder, "{name:?}");
    }
    for name in [
        "**", "//", ".:", "*", "/", "?", "..", ".", "", "a/../..", "\u{0}", "\n",
    ] {
        let folder = folder_name(name);
        HomeFolder::parse(&folder).unwrap();
        let a = new_account(name, Role::User, None, None, 0);
        assert_eq!(home_folder(&a, None).unwrap().as_str(), folder);
    }
}

#[test]
fn an_account_shut_out_from_every_address_is_recognised() {
    let nets = |t: &str| parse_nets(t).unwrap();
    let mut a = new_account("owner", Role::SystemAdmin, None, None, 0);
    let mut g = new_group("owners");
    assert!(admits_some_address(&a, Some(&g)));
    a.ip_deny = nets("0.0.0.0/0");
    assert!(admits_some_address(&a, None), "IPv6 is still open");
    a.ip_deny = nets("0.0.0.0/0,::/0");
    assert!(!admits_some_address(&a, None));
    a.ip_deny = nets("0.0.0.0/1,128.0.0.0/1,::/1,8000::/1");
    assert!(!admits_some_address(&a, None), "halves add up");
    a.ip_deny = nets("0.0.0.0/1,::/0");
    assert!(admits_some_address(&a, None), "128.0.0.0/1 is open");
    // An allow list that the deny list covers leaves nothing.
    a.ip_deny.clear();
    g.ip_allow = nets("10.0.0.0/8");
    g.ip_deny = nets("10.0.0.0/9,10.128.0.0/9");
    assert!(!admits_some_address(&a, Some(&g)));
    g.ip_deny = nets("10.0.0.0/9");
    assert!(admits_some_address(&a, Some(&g)));
    // The account's own allow list replaces the group's.
    g.ip_deny = nets("10.0.0.0/8");
    assert!(!admits_some_address(&a, Some(&g)));
    a.ip_allow = nets("192.0.2.1/32");
    assert!(admits_some_address(&a, Some(&g)));
    // IPv6 entries never match IPv4 clients (they are compared as IPv4).
    a.ip_allow = nets("::ffff:0.0.0.0/96");
    assert!(!admits_some_address(&a, None));
    a.ip_allow = nets("::/0");
    a.ip_deny = nets("::/1,8000::/1");
    assert!(!admits_some_address(&a, None));
    a.ip_deny = nets("255.255.255.255/32,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
    assert!(admits_some_address(&a, None));
    a.ip_allow = nets("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
    assert!(!admits_some_address(&a, None));
}

#[test]
fn homes() {
    for ok in ["alice", "homes/${USER}", "a/b/c", "team/.x"] {
        validate_home(ok).unwrap();
    }
    for bad in [
        "", "/etc", "../x", "a/../b", "a//b", "./a", "a\\b", "a/.", "nul\0", "..", ".", "a/",
        "x\u{7f}",
    ] {
        assert!(validate_home(bad).is_err(), "{bad:?}");
    }
    assert!(validate_home(&"x".repeat(256)).is_err());
    let mut a = new_account("dom\\bob", Role::User, None, None, 0);
    assert_eq!(home_folder(&a, None).unwrap().as_str(), "dom.bob");
    let mut g = new_group("staff");
    g.home_template = "staff/${USER}".into();
    assert_eq!(home_folder(&a, Some(&g)).unwrap().as_str(), "staff/dom.bob");
    let home = home_folder(&a, Some(&g)).unwrap();
    let parts: Vec<&str> = home.parts().collect();
    assert_eq!(parts, ["staff", "dom.bob"]);
    a.home = Some("elsewhere".into());
    assert_eq!(home_folder(&a, Some(&g)).unwrap().as_str(), "elsewhere");
    // Values that bypassed validation (an old store) are checked after
    // substitution.
    a.home = Some("../..".into());
    assert!(home_folder(&a, Some(&g)).is_err());
    a.home = None;
    g.home_template = "${USER}/..".into();
    assert!(home_folder(&a, Some(&g)).is_err());
    g.home_template = "/${USER}".into();
    assert!(home_folder(&a, Some(&g)).is_err());
}

#[test]
fn ip_filters() {
    let mut a = new_account("a", Role::User, None, None, 0);
    let mut g = new_group("g");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(address_allowed(&a, Some(&g), ip("10.1.2.3")));
    g.ip_allow = parse_nets("10.0.0.0/8").unwrap();
    assert!(address_allowed(&a, Some(&g), ip("10.1.2.3")));
    assert!(!address_allowed(&a, Some(&g), ip("192.168.1.1")));
    assert!(
        address_allowed(&a, Some(&g), ip("::ffff:10.9.9.9")),
        "v4-mapped v6"
    );
    a.ip_deny = parse_nets("10.1.0.0/16").unwrap();
    assert!(!address_allowed(&a, Some(&g), ip("10.1.2.3")));
    a.ip_allow = parse_nets("192.168.1.1").unwrap();
    assert!(
        address_allowed(&a, Some(&g), ip("192.168.1.1")),
        "account list overrides group's"
    );
    assert!(parse_nets("10.0.0.0/33").is_err());
    assert!(parse_nets("banana").is_err());
    assert!(parse_nets("none").unwrap().is_empty());
}

#[test]
fn public_keys() {
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";
    let k = parse_public_key(line, 7).unwrap();
    assert_eq!(k.algorithm, "ssh-ed25519");
    assert_eq!(k.comment, "bob@laptop");
    assert!(k.fingerprint.starts_with("SHA256:"));
    assert_eq!(k.openssh(), line);
    for bad in [
        "",
        "ssh-ed25519",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "ssh-ed25519 AAAA",
    ] {
        assert!(parse_public_key(bad, 0).is_err(), "{bad:?}");
    }
}

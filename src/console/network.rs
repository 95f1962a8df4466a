//! The console's network settings: systemd-networkd `.network` files.
//!
//! An interface gets either DHCP or a static address with an optional
//! gateway and DNS servers. The console writes
//! `<network_dir>/50-coffer-<interface>.network` atomically (a temporary
//! file, synced, renamed over the old one) and asks networkd to reload.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// How an interface gets its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// DHCP (v4 and v6).
    Dhcp,
    /// A fixed address.
    Static {
        /// Address with prefix length, e.g. `192.168.1.20/24`.
        address: IpNet,
        /// Default gateway.
        gateway: Option<IpAddr>,
        /// DNS servers.
        dns: Vec<IpAddr>,
    },
}

/// Why a `.network` file was not written. The message carries its cause
/// (no `source()`, so `{:#}` says it once).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The interface name is not one the console writes a file for.
    #[error("{0}")]
    Interface(String),
    /// The folder or the file could not be made.
    #[error("cannot {doing} {}: {cause}", path.display())]
    Io {
        /// `create` (the folder) or `write` (the file).
        doing: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// The operating system's reason.
        cause: std::io::Error,
    },
}

/// Checks an interface name as the kernel allows it (1-15 characters, no
/// `/`, no spaces); the console allows letters, digits, `-`, `_`, `.`.
pub fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("an interface name has 1 to 15 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err("an interface name has letters, digits, - _ and . only".into());
    }
    Ok(())
}

/// Parses `192.168.1.20/24` (the prefix length is required).
pub fn parse_address(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .trim()
        .parse()
        .map_err(|_| "type an address with its prefix length, e.g. 192.168.1.20/24".to_string())?;
    let ip = net.addr();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!("{ip} cannot be an interface's address"));
    }
    if net.prefix_len() == net.max_prefix_len() && ip.is_ipv4() {
        return Err("a /32 leaves no network; use e.g. /24".into());
    }
    Ok(net)
}

/// Parses a gateway for `address` (same family, inside its network).
pub fn parse_gateway(text: &str, address: &IpNet) -> Result<IpAddr, String> {
    let gw: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| "type an IP address, e.g. 192.168.1.1".to_string())?;
    if gw.is_ipv4() != address.addr().is_ipv4() {
        return Err("the gateway must be of the same family as the address".into());
    }
    if gw == address.addr() {
        return Err("the gateway cannot be the box's own address".into());
    }
    if !(address.contains(&gw) || (gw.is_ipv6() && is_link_local_v6(gw))) {
        return Err(format!("{gw} is not in the network {}", address.trunc()));
    }
    Ok(gw)
}

fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80)
}

/// Parses DNS servers separated by spaces or commas (at most 3).
pub fn parse_dns(text: &str) -> Result<Vec<IpAddr>, String> {
    let list: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if list.len() > 3 {
        return Err("at most 3 DNS servers".into());
    }
    list.iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an IP address"))
        })
        .collect()
}

/// The file for an interface.
pub fn file_for(dir: &Path, interface: &str) -> PathBuf {
    dir.join(format!("50-coffer-{interface}.network"))
}

/// The `.network` file's text.
pub fn render(interface: &str, setting: &Setting) -> String {
    let mut s = String::from(
        "# Written by the Coffer technician console. The console replaces this\n\
         # file when the interface is set again.\n[Match]\n",
    );
    s.push_str(&format!("Name={interface}\n\n[Network]\n"));
    match setting {
        Setting::Dhcp => s.push_str("DHCP=yes\n"),
        Setting::Static {
            address,
            gateway,
            dns,
        } => {
            s.push_str(&format!("Address={address}\n"));
            if let Some(g) = gateway {
                s.push_str(&format!("Gateway={g}\n"));
            }
            for d in dns {
                s.push_str(&format!("DNS={d}\n"));
            }
        }
    }
    s
}

/// One line describing a setting, for the audit log.
pub fn summary(interface: &str, setting: &Setting) -> String {
    match setting {
        Setting::Dhcp => format!("{interface}: DHCP"),
        Setting::Static {
            address,
            gateway,
            dns,
        } => format!(
            "{interface}: static {address}{}{}",
            gateway.map_or_else(String::new, |g| format!(" gateway {g}")),
            if dns.is_empty() {
                String::new()
            } else {
                format!(
                    " dns {}",
                    dns.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        ),
    }
}

fn failed(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError {
    let path = path.to_path_buf();
    move |cause| NetworkError::Io { doing, path, cause }
}

/// Writes the file atomically; returns its path.
pub fn write(dir: &Path, interface: &str, setting: &Setting) -> Result<PathBuf, NetworkError> {
    check_interface(interface).map_err(NetworkError::Interface)?;
    std::fs::create_dir_all(dir).map_err(failed("create", dir))?;
    let path = file_for(dir, interface);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let tmp = format!(".50-coffer-{interface}.network.tmp");
    let text = render(interface, setting);
    // Root writes system configuration only into a folder root owns, and
    // never through a link (see super::files).
    let folder = crate::system::root_files::open_dir(dir, crate::system::root_files::Owner::Root)
        .map_err(failed("write", &path))?;
    let result = crate::system::root_files::create_new(&folder, &tmp, 0o644, text.as_bytes())
        .and_then(|()| crate::system::root_files::replace(&folder, &tmp, &name));
    if let Err(e) = result {
        let _ = rustix::fs::unlinkat(&folder, tmp.as_str(), rustix::fs::AtFlags::empty());
        return Err(failed("write", &path)(e));
    }
    Ok(path)
}

/// An interface and its addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interface {
    /// Name, e.g. `eth0`.
    pub name: String,
    /// Whether it is up.
    pub up: bool,
    /// Addresses with prefix length.
    pub addresses: Vec<String>,
}

/// The machine's interfaces and their addresses.
pub fn interfaces() -> Vec<Interface> {
    let mut map: BTreeMap<String, Interface> = BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    for a in addrs {
        let entry = map
            .entry(a.interface_name.clone())
            .or_insert_with(|| Interface {
                name: a.interface_name.clone(),
                ..Default::default()
            });
        entry.up |= a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
        let ip = a.address.as_ref().and_then(|s| {
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        let prefix = a.netmask.as_ref().and_then(|m| {
            m.as_sockaddr_in()
                .map(|v4| u32::from(v4.ip()).count_ones())
                .or_else(|| {
                    m.as_sockaddr_in6()
                        .map(|v6| u128::from(v6.ip()).count_ones())
                })
        });
        if let Some(ip) = ip {
            entry.addresses.push(match prefix {
                Some(p) => format!("{ip}/{p}"),
                None => ip.to_string(),
            });
        }
    }
    map.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_and_static_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "eth0", &Setting::Dhcp).unwrap();
        assert_eq!(p, dir.path().join("50-coffer-eth0.network"));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.ends_with("[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n"),
            "{text}"
        );
        let address = parse_address("192.168.1.20/24").unwrap();
        let setting = Setting::Static {
            address,
            gateway: Some(parse_gateway("192.168.1.1", &address).unwrap()),
            dns: parse_dns("192.168.1.1, 9.9.9.9").unwrap(),
        };
        write(dir.path(), "eth0", &setting).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.ends_with("[Network]\nAddress=192.168.1.20/24\nGateway=192.168.1.1\nDNS=192.168.1.1\nDNS=9.9.9.9\n"),
            "{text}"
        );
        assert_eq!(
            summary("eth0", &setting),
            "eth0: static 192.168.1.20/24 gateway 192.168.1.1 dns 192.168.1.1,9.9.9.9"
        );
    }

    #[test]
    fn a_file_that_cannot_be_written_says_where_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), "eth0/x", &Setting::Dhcp).unwrap_err();
        assert!(matches!(err, NetworkError::Interface(_)), "{err:?}");
        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, "").unwrap();
        let err = write(&blocked.join("network"), "eth0", &Setting::Dhcp).unwrap_err();
        assert!(
            matches!(
                err,
                NetworkError::Io {
                    doing: "create",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("cannot create ") && text.contains("a-file/network: "),
            "{text}"
        );
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn bad_input_says_why() {
        assert!(check_interface("eth0/x").is_err());
        assert!(check_interface("a-very-long-interface").is_err());
        assert!(parse_address("192.168.1.20").is_err());
        assert!(parse_address("127.0.0.1/8").is_err());
        let a = parse_address("10.0.0.5/24").unwrap();
        assert!(
            parse_gateway("10.0.1.1", &a)
                .unwrap_err()
                .contains("not in the network")
        );
        assert!(parse_gateway("fe80::1", &a).is_err());
        assert!(parse_dns("1.1.1.1 x").is_err());
        assert!(parse_dns("1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4").is_err());
        assert!(parse_dns("").unwrap().is_empty());
    }

    #[test]
    fn loopback_is_listed() {
        let all = interfaces();
        assert!(all.iter().any(|i| i.name == "lo"), "{all:?}");
    }
}

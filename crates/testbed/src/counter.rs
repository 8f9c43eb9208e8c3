//! A byte counter of what this machine sends to the test bed's hosts, at
//! their addresses and sshd's port: an nftables rule in a table of its own,
//! counted at the IP level, so that whatever sends (landfall, rsync by
//! hand) is counted the same way. The table goes on drop, and tables of
//! processes that are gone go when a new counter is made.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

/// The start of every counter's table name; its process id follows.
const TABLE: &str = "landfall_testbed_bytes_";

pub struct ByteCounter {
    table: String,
}

impl ByteCounter {
    /// Counts from now on what is sent to `hosts` at their ports; needs
    /// root and `nft`.
    pub fn install(hosts: &[crate::Host]) -> Result<ByteCounter> {
        remove_stale_tables();
        let port = hosts
            .first()
            .context("no host to count the bytes sent to")?
            .port;
        ensure!(
            hosts.iter().all(|h| h.port == port),
            "the hosts counted must listen on one port"
        );
        let addresses = hosts
            .iter()
            .map(|h| h.address.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let table = format!("{TABLE}{}_{port}", std::process::id());
        let rules = format!(
            "table inet {table} {{\n\
               chain output {{\n\
                 type filter hook output priority 0; policy accept;\n\
                 ip daddr {{ {addresses} }} tcp dport {port} counter comment \"to-hosts\"\n\
               }}\n\
             }}\n"
        );
        nft(&["-f", "-"], &rules).context(
            "cannot install an nftables counter of the bytes sent to the hosts (it needs root \
             and `nft`, apt-get install nftables)",
        )?;
        Ok(ByteCounter { table })
    }

    /// The bytes sent to the hosts so far.
    pub fn sent(&self) -> Result<u64> {
        let json = nft(&["-j", "list", "table", "inet", &self.table], "")?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        value["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("rule"))
            .find(|rule| rule["comment"] == "to-hosts")
            .and_then(|rule| {
                rule["expr"]
                    .as_array()?
                    .iter()
                    .find_map(|e| e.get("counter")?.get("bytes")?.as_u64())
            })
            .context("the nftables counter is missing")
    }
}

impl Drop for ByteCounter {
    fn drop(&mut self) {
        let _ = nft(&["delete", "table", "inet", &self.table], "");
    }
}

/// Removes the tables of counters whose process is gone (killed before it
/// could remove its own).
fn remove_stale_tables() {
    let Ok(tables) = nft(&["list", "tables", "inet"], "") else {
        return;
    };
    for line in tables.lines() {
        let Some(name) = line.trim().strip_prefix("table inet ") else {
            continue;
        };
        let gone = name
            .strip_prefix(TABLE)
            .and_then(|rest| rest.split('_').next()?.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            let _ = nft(&["delete", "table", "inet", name], "");
        }
    }
}

fn nft(args: &[&str], input: &str) -> Result<String> {
    let output = crate::support::output_with_input(
        Command::new(crate::prerequisites::needed("nft")?).args(args),
        input.as_bytes(),
        Duration::from_secs(30),
    )?;
    ensure!(
        output.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

//! `tillmesh config check`: reads a terminal or cloud config as the daemon would (the
//! environment's overrides included) and prints every problem at once: each key the schema
//! refuses, each value out of range, each file it names that is missing or unreadable.

use std::path::Path;

/// How many parse problems are collected before giving up (each is skipped to find the next).
const PARSE_PROBLEMS_MAX: usize = 64;

/// Checks `path` (a cloud config when it has `[auth]` or `[database]`, else a terminal
/// config); prints `ok` or every problem, one a line; fails when there is one.
pub(super) fn check(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let cloud = toml::from_str::<toml::Table>(&text)
        .is_ok_and(|t| t.contains_key("auth") || t.contains_key("database"));
    let problems = if cloud {
        cloud_problems(&text)
    } else {
        terminal_problems(&text, path.parent().unwrap_or(Path::new(".")))
    };
    let kind = if cloud { "cloud" } else { "terminal" };
    if problems.is_empty() {
        println!("{}: ok ({kind} config)", path.display());
        return Ok(());
    }
    for p in &problems {
        println!("{}: {p}", path.display());
    }
    anyhow::bail!(
        "{} problem(s) in {kind} config {}",
        problems.len(),
        path.display()
    )
}

/// Parses `text` as `T`, skipping each line the parser refuses to find the next problem.
fn parse_all<T: serde::de::DeserializeOwned>(text: &str) -> (Option<T>, Vec<String>) {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut problems = Vec::new();
    for _ in 0..PARSE_PROBLEMS_MAX {
        let joined = lines.join("\n");
        let e = match toml::from_str::<T>(&joined) {
            Ok(v) => return (Some(v), problems),
            Err(e) => e,
        };
        let line = e
            .span()
            .map(|s| joined[..s.start.min(joined.len())].matches('\n').count());
        match line {
            Some(n) => {
                problems.push(format!("line {}: {}", n + 1, e.message()));
                // Skip the line (not a section header: its keys would move to another).
                let l = lines[n].trim_start();
                if l.starts_with('[') || l.starts_with('#') {
                    break;
                }
                lines[n] = format!("# {}", lines[n]);
            }
            None => {
                problems.push(e.message().to_string());
                break;
            }
        }
    }
    (None, problems)
}

fn terminal_problems(text: &str, base: &Path) -> Vec<String> {
    use tillmesh::config::{ENV_PREFIX, TerminalConfig};
    let (text, vars) = match tillmesh_cloud::config::with_env_overrides(
        text,
        ENV_PREFIX,
        &[tillmesh_cloud::config::CLOUD_ENV_PREFIX],
        std::env::vars(),
    ) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let (cfg, mut problems) = parse_all::<TerminalConfig>(&text);
    if !vars.is_empty() && !problems.is_empty() {
        problems.push(format!(
            "line numbers count the config as {} from the environment rewrote it",
            vars.join(", ")
        ));
    }
    let Some(mut cfg) = cfg else {
        return problems;
    };
    cfg.resolve_paths(base);
    problems.extend(
        cfg.problems()
            .into_iter()
            .map(|(k, why)| format!("{k}: {why}")),
    );
    let mut file = |key: &str, p: &Path| {
        if let Err(e) = std::fs::metadata(p) {
            problems.push(format!("{key}: {}: {e}", p.display()));
        }
    };
    file("catalog.path", &cfg.catalog.path);
    if let Some(v) = &cfg.vision {
        file("vision.card", &v.card);
    }
    if let Some(c) = cfg.cloud.as_ref().and_then(|c| c.ca_cert.as_ref()) {
        file("cloud.ca_cert", c);
    }
    // A till that enrols itself has no identity until its join token comes.
    if let Some(m) = cfg
        .mesh
        .as_ref()
        .filter(|m| !tillmesh::enrol::waiting_for(m))
    {
        let missing = [
            ("mesh.ca_cert", &m.ca_cert),
            ("mesh.cert", &m.cert),
            ("mesh.key", &m.key),
        ]
        .into_iter()
        .filter(|(_, p)| !p.exists())
        .map(|(k, p)| format!("{k}: {} does not exist", p.display()))
        .collect::<Vec<_>>();
        if missing.is_empty() {
            match tillmesh_mesh::identity::TillIdentity::load(
                &cfg.store.store_id,
                &m.ca_cert,
                &m.cert,
                &m.key,
            ) {
                Ok(id) if id.terminal != cfg.terminal.id => problems.push(format!(
                    "mesh.cert: the certificate is for terminal {}, terminal.id is {}",
                    id.terminal, cfg.terminal.id
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("mesh: {e}")),
            }
        }
        problems.extend(missing);
    }
    problems
}

fn cloud_problems(text: &str) -> Vec<String> {
    use tillmesh_cloud::config::{CLOUD_ENV_PREFIX, CloudConfig, with_env_overrides};
    let text = match with_env_overrides(text, CLOUD_ENV_PREFIX, &[], std::env::vars()) {
        Ok((t, _)) => t,
        Err(e) => return vec![e],
    };
    let (cfg, mut problems) = parse_all::<CloudConfig>(&text);
    if let Some(cfg) = cfg
        && let Err(e) = cfg.check()
    {
        problems.push(e.to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_broken_config_is_listed() {
        let good = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/terminal.example.toml"),
        )
        .unwrap();
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        assert_eq!(terminal_problems(&good, &base), Vec::<String>::new());
        let cloud = std::fs::read_to_string(base.join("cloud.example.toml")).unwrap();
        assert_eq!(cloud_problems(&cloud), Vec::<String>::new());
        assert!(!cloud_problems(&cloud.replace("[auth]", "[auth]\nkeyz = 1")).is_empty());
        // An unknown key, a value of the wrong type, a value out of range, a missing file.
        let broken = good
            .replacen("\n[checkout]\n", "\n[checkout]\nscan_guard = 5\n", 1)
            .replacen(
                "lock_attempts_max = 3 ",
                "lock_attempts_max = \"three\" ",
                1,
            )
            .replacen("\n[terminal]\nid = 1 ", "\n[terminal]\nid = 0 ", 1)
            .replace("catalog.example.json", "no-such-catalog.json");
        assert_ne!(broken, good);
        let p = terminal_problems(&broken, &base);
        let all = p.join("\n");
        assert!(all.contains("unknown field `scan_guard`"), "{all}");
        assert!(all.contains("invalid type: string \"three\""), "{all}");
        assert!(all.contains("terminal.id"), "{all}");
        assert!(all.contains("no-such-catalog.json"), "{all}");
        assert_eq!(p.len(), 4, "{all}");
    }

    #[test]
    fn the_package_config_enrols_itself_and_checks() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/terminal.package.toml"),
        )
        .unwrap();
        // The package's files are where the package puts them: point them at the repository.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = text
            .replace(
                "/usr/share/tillmesh/configs/",
                &format!("{}/configs/", repo.display()),
            )
            .replace(
                "/usr/share/tillmesh/models/",
                &format!("{}/models/", repo.display()),
            );
        let dir = tempfile::tempdir().unwrap();
        let text = text.replace("/var/lib/tillmesh", &dir.path().display().to_string());
        assert_eq!(terminal_problems(&text, dir.path()), Vec::<String>::new());
        let cfg: tillmesh::config::TerminalConfig = toml::from_str(&text).unwrap();
        assert!(tillmesh::enrol::waiting(&cfg));
        // Without enrol, an empty store id is a problem.
        let fixed = text.replace("enrol = true", "enrol = false");
        let all = terminal_problems(&fixed, dir.path()).join("\n");
        assert!(all.contains("store.store_id"), "{all}");
    }
}

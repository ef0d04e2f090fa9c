//! Building guest Cargo projects into components.
//!
//! A function whose `source` is a Cargo project folder is built with
//! `cargo build --target wasm32-wasip2 --release` when its sources are newer than its output
//! (or the output is missing). The output path is read from cargo's JSON messages, so projects
//! inside a workspace work too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::{App, Error, Function, Result, Source};

pub const TARGET: &str = "wasm32-wasip2";

/// What [`component_path`] did to find a function's component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The source is a `.wasm` file.
    Prebuilt,
    /// The project's output was newer than its sources.
    Fresh,
    /// cargo ran.
    Compiled,
}

/// The `.wasm` component of every function of `app`, building Cargo projects that need it.
/// `progress` hears about each build before it starts.
pub fn components(app: &App, mut progress: impl FnMut(&Function)) -> Result<Vec<PathBuf>> {
    app.functions
        .iter()
        .map(|f| component_path(app, f, &mut progress).map(|(p, _)| p))
        .collect()
}

/// The component of one function, building it if its source is a stale Cargo project.
pub fn component_path(
    app: &App,
    function: &Function,
    progress: &mut impl FnMut(&Function),
) -> Result<(PathBuf, Built)> {
    let project = match &function.source {
        Source::Wasm(path) => return Ok((path.clone(), Built::Prebuilt)),
        Source::Cargo(project) => project,
    };
    let fail = |message: String| Error::Build {
        path: app.manifest_path.clone(),
        function: function.name.clone(),
        message,
    };
    let package = package_name(project).map_err(fail)?;
    // A workspace member builds into the workspace's target folder, and its path dependencies
    // in the workspace decide its output too.
    let workspace = workspace_root(project);
    let root = workspace.as_deref().unwrap_or(project);
    let candidate = root
        .join("target")
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let newest = match &workspace {
        Some(root) => newest_in_workspace(root),
        None => newest_source(project),
    };
    if let (Ok(out), Some(newest)) = (modified(&candidate), newest)
        && out >= newest
    {
        return Ok((candidate, Built::Fresh));
    }
    progress(function);
    let target = package.replace('-', "_");
    let path = build_project(project)
        .map_err(fail)?
        .into_iter()
        .find_map(|(name, path)| (name == target).then_some(path))
        .ok_or_else(|| {
            fail(format!(
                "cargo built {} but produced no .wasm: is it a `cdylib` crate exporting wasi:http/incoming-handler?",
                project.display()
            ))
        })?;
    Ok((path, Built::Compiled))
}

fn package_name(project: &Path) -> Result<String, String> {
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{} has no [package] name", manifest.display()))
}

/// The folder of the Cargo workspace `project` is a member of, if any: as cargo decides it,
/// the nearest folder above with a `[workspace]` whose `members` name the project and whose
/// `exclude` does not (a project with its own `[workspace]` is its own root).
fn workspace_root(project: &Path) -> Option<PathBuf> {
    let manifest = |dir: &Path| -> Option<toml::Table> {
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).ok()?).ok()
    };
    if manifest(project).is_some_and(|doc| doc.contains_key("workspace")) {
        return None;
    }
    let (root, workspace) = project.ancestors().skip(1).find_map(|dir| {
        let doc = manifest(dir)?;
        let workspace = doc.get("workspace")?.as_table()?.clone();
        Some((dir.to_path_buf(), workspace))
    })?;
    let relative = project.strip_prefix(&root).ok()?;
    let listed = |key: &str| -> Vec<String> {
        workspace
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if listed("exclude")
        .iter()
        .any(|e| relative.starts_with(e.trim_end_matches('/')))
    {
        return None;
    }
    listed("members")
        .iter()
        .any(|m| member_matches(m, relative))
        .then_some(root)
}

/// Whether a `members` entry (a path, whose components may be `*`) names `relative`.
fn member_matches(member: &str, relative: &Path) -> bool {
    let pattern: Vec<&str> = member.trim_end_matches('/').split('/').collect();
    let path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, c)| *p == "*" || *p == c.as_str())
}

/// The newest source of a workspace: its manifest and lock file, and every member folder's
/// sources (any folder beside them but `target` and hidden ones).
fn newest_in_workspace(root: &Path) -> Option<SystemTime> {
    let mut newest = newest_source(root);
    let entries = std::fs::read_dir(root).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        newest = newest.max(newest_source(&entry.path()));
    }
    newest
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// The newest modification time among the files that decide a build's output.
fn newest_source(project: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for name in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        if let Ok(t) = modified(&project.join(name)) {
            newest = newest.max(Some(t));
        }
    }
    for dir in ["src", "wit"] {
        newest_in(&project.join(dir), &mut newest);
    }
    newest
}

fn newest_in(dir: &Path, newest: &mut Option<SystemTime>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => newest_in(&path, newest),
            Ok(_) => {
                if let Ok(t) = modified(&path) {
                    *newest = (*newest).max(Some(t));
                }
            }
            Err(_) => {}
        }
    }
}

/// Build the Cargo project (or workspace) in `project` for wasm32-wasip2 and return every `.wasm`
/// it produced, with the name of the target that produced it.
pub fn build_project(project: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cannot_run =
        |e: std::io::Error| format!("cannot run cargo to build {}: {e}", project.display());
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(project)
        // The host's own target dir (when muon runs under cargo) is not the guest's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(cannot_run)?;
    // cargo's progress (`Compiling ...`) is shown as it comes, and kept for the error message.
    let progress = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut kept = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("  {line}");
                kept.push_str(&line);
                kept.push('\n');
            }
            kept
        })
    });
    let output = child.wait_with_output().map_err(cannot_run)?;
    let stderr = progress.and_then(|p| p.join().ok()).unwrap_or_default();
    if !output.status.success() {
        let mut why = tail_lines(&stderr, 30);
        if stderr.contains("may not be installed") || stderr.contains("can't find crate for `std`")
        {
            why.push_str("\nhint: install the target with `rustup target add wasm32-wasip2`");
        }
        return Err(format!(
            "`cargo build --release --target {TARGET}` failed in {}:\n{why}",
            project.display()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut built = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        for file in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(file) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                built.push((name.to_string(), PathBuf::from(file)));
            }
        }
    }
    Ok(built)
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{newest_in_workspace, workspace_root};

    fn write(path: &std::path::Path, text: &str, at: SystemTime) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn a_workspace_member_is_judged_by_the_whole_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let old = SystemTime::now() - Duration::from_secs(3600);
        write(
            &ws.join("Cargo.toml"),
            "[workspace]\nmembers = [\"f\", \"lib\"]\n",
            old,
        );
        write(&ws.join("f/Cargo.toml"), "[package]\nname = \"f\"\n", old);
        write(&ws.join("f/src/lib.rs"), "", old);
        write(&ws.join("lib/src/lib.rs"), "", old);
        // Build outputs are not sources.
        write(&ws.join("target/x/y.rs"), "", SystemTime::now());
        assert_eq!(workspace_root(&ws.join("f")).as_deref(), Some(ws));
        assert_eq!(workspace_root(ws), None);
        // A project under a workspace that does not list it, or excludes it, is its own.
        write(
            &ws.join("other/Cargo.toml"),
            "[package]\nname = \"o\"\n",
            old,
        );
        assert_eq!(workspace_root(&ws.join("other")), None);
        write(
            &ws.join("Cargo.toml"),
            "[workspace]\nmembers = [\"f\", \"lib\", \"guests/*\"]\nexclude = [\"guests/x\"]\n",
            old,
        );
        write(
            &ws.join("guests/g/Cargo.toml"),
            "[package]\nname = \"g\"\n",
            old,
        );
        write(
            &ws.join("guests/x/Cargo.toml"),
            "[package]\nname = \"x\"\n",
            old,
        );
        assert_eq!(workspace_root(&ws.join("guests/g")).as_deref(), Some(ws));
        assert_eq!(workspace_root(&ws.join("guests/x")), None);
        assert!(newest_in_workspace(ws).unwrap() <= old + Duration::from_secs(1));
        // A change in the shared library makes the member stale.
        let later = old + Duration::from_secs(60);
        write(&ws.join("lib/src/lib.rs"), "// changed", later);
        assert!(newest_in_workspace(ws).unwrap() >= later);
    }
}

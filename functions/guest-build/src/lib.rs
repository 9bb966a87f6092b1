//! Builds the guest functions in `functions/` to `wasm32-wasip2` components, from a build script.
//!
//! The runtime (for `builtin:tensor`) and the tests (for their guest programs) need the
//! components as files when they compile. Their `build.rs` does it in two steps:
//!
//! 1. Add `maas-guest-build` under `[build-dependencies]`.
//! 2. Call [`build_guests`] with the workspace root and the packages, and hand the paths to the
//!    crate, e.g. as `rustc-env` variables for `include_bytes!(env!(…))`:
//!
//! ```no_run
//! // build.rs
//! use std::path::Path;
//!
//! let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
//! let root = Path::new(&manifest_dir).parent().unwrap();
//! let wasm = maas_guest_build::build_guests(root, &["maas-fn-tensor"]);
//! println!("cargo:rustc-env=MAAS_TENSOR_WASM={}", wasm[0].display());
//! ```
//!
//! The nested build is `$CARGO build --profile guest --target wasm32-wasip2 --target-dir
//! <root>/target/guests -p …`: the same command a person types to build the guests, so the two
//! share artifacts. Its target directory is separate from the outer build's, so the outer
//! build's lock does not block it, and it shares the outer build's jobserver (`CARGO_MAKEFLAGS`).
//! Everything else the outer build put in the environment for its own compilation (flags, wrappers
//! such as clippy's, profile and target overrides, the build script's `CARGO_CFG_*` and
//! `CARGO_FEATURE_*`) is removed, so that the guests build the same from `cargo build`,
//! `cargo clippy`, `cargo test` or by hand.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The Cargo profile the guests are built with (release without DWARF; see the workspace `Cargo.toml`).
pub const PROFILE: &str = "guest";

/// Where the guest builds go, under the workspace root.
pub const TARGET_DIR: &str = "target/guests";

/// Builds `packages` (Cargo package names such as `maas-fn-tensor`) of the workspace at
/// `workspace_root` with the `guest` profile for [`TARGET`] and returns the path of each one's component,
/// in the order of `packages`.
///
/// Prints `cargo:rerun-if-changed` for the workspace's `wit/`, `Cargo.toml`, `Cargo.lock` and every
/// directory under `functions/`, so the calling build script runs again when a guest may have
/// changed (the nested build itself is a no-op when nothing did).
///
/// # Panics
///
/// When cargo cannot be run or the build fails (with cargo's output and a hint about the
/// `wasm32-wasip2` target), or a component is missing afterwards: in a build script a panic is
/// the way to fail the build with a message.
pub fn build_guests(workspace_root: &Path, packages: &[&str]) -> Vec<PathBuf> {
    rerun_if_guests_change(workspace_root);
    if packages.is_empty() {
        return Vec::new();
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root)
        .arg("build")
        .args(["--profile", PROFILE])
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(workspace_root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(workspace_root.join(TARGET_DIR));
    for package in packages {
        command.args(["-p", package]);
    }
    scrub_env(&mut command);

    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {} to build the guest functions: {err}", cargo.to_string_lossy()));
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "building the guest functions failed ({}):\n{command:?}\n{log}\n\
             hint: the wasm32-wasip2 target is listed in rust-toolchain.toml; run \
             `rustup toolchain install` (or `rustup target add wasm32-wasip2`)",
            output.status
        );
    }
    // Shown by cargo with `-vv` or when the calling build script fails later.
    eprintln!("{command:?}\n{log}");

    packages
        .iter()
        .map(|package| {
            let path = wasm_path(workspace_root, package);
            assert!(path.is_file(), "cargo built {package} but {} is missing: is it a `cdylib`?", path.display());
            path
        })
        .collect()
}

/// Where [`build_guests`] puts the component of `package`:
/// `<workspace_root>/target/guests/wasm32-wasip2/guest/<package with '-' as '_'>.wasm`.
pub fn wasm_path(workspace_root: &Path, package: &str) -> PathBuf {
    workspace_root.join(TARGET_DIR).join(TARGET).join(PROFILE).join(format!("{}.wasm", package.replace('-', "_")))
}

/// Tells cargo to run the calling build script again when the WIT world, the workspace manifest or
/// lock file, or any guest crate changes. Cargo scans a directory recursively.
fn rerun_if_guests_change(workspace_root: &Path) {
    let mut paths =
        vec![workspace_root.join("wit"), workspace_root.join("Cargo.toml"), workspace_root.join("Cargo.lock")];
    let functions = workspace_root.join("functions");
    if let Ok(entries) = std::fs::read_dir(&functions) {
        let mut dirs: Vec<PathBuf> =
            entries.filter_map(|entry| Some(entry.ok()?.path())).filter(|path| path.is_dir()).collect();
        dirs.sort();
        paths.extend(dirs);
    } else {
        paths.push(functions);
    }
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Removes what the outer build put in the environment for its own compilation and that would
/// change, break or slow down the nested one.
fn scrub_env(command: &mut Command) {
    // Flags and wrappers meant for the outer target (clippy's driver, coverage, sccache, ...).
    const REMOVE: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "CARGO_TARGET_DIR",
        "CARGO_INCREMENTAL",
        "CARGO_PRIMARY_PACKAGE",
        // What cargo sets for the calling build script; the nested cargo sets its own for the
        // build scripts it runs, but stale extras would leak into them.
        "TARGET",
        "HOST",
        "OUT_DIR",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "CARGO_CRATE_NAME",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
    ];
    // Whole families: `CARGO_BUILD_TARGET`, `CARGO_BUILD_RUSTFLAGS`, `CARGO_PROFILE_RELEASE_*`, ...
    const REMOVE_PREFIXES: &[&str] =
        &["CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_"];
    // Under Miri, `RUSTC` is Miri's driver; otherwise it is the outer build's real compiler,
    // which keeps the nested build on the same toolchain.
    if std::env::var_os("CARGO_CFG_MIRI").is_some() {
        command.env_remove("RUSTC");
    }
    for name in REMOVE {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if REMOVE_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            command.env_remove(OsStr::new(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_path_uses_the_crate_name() {
        assert_eq!(
            wasm_path(Path::new("/w"), "maas-fn-tensor"),
            Path::new("/w/target/guests/wasm32-wasip2/guest/maas_fn_tensor.wasm")
        );
    }

    #[test]
    fn scrubs_outer_build_env() {
        let mut command = Command::new("true");
        scrub_env(&mut command);
        let removed: Vec<&OsStr> =
            command.get_envs().filter(|(_, value)| value.is_none()).map(|(name, _)| name).collect();
        for name in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER"] {
            assert!(removed.contains(&OsStr::new(name)), "{name}");
        }
        assert!(!removed.contains(&OsStr::new("CARGO_MAKEFLAGS")));
    }
}

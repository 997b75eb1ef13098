//! Small file helpers shared by the crate: atomic writes of one file ([`write_atomic`]), of a set
//! of files in one directory ([`write_set_atomic`]) and of files anywhere, all or nothing
//! ([`write_files_atomic`]); whether two paths are one file ([`same_file`]); and the clean-up of
//! temporary files left by killed writers.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: into a temporary file `.NAME.PID.tmp` in the same
/// directory, flushed and synced, then renamed over `path`. A reader never sees a half-written
/// file, and a failed write leaves any previous file in place. Temporary files of `path` left by
/// writers that were killed (`.NAME.PID.tmp` whose process no longer runs) are removed first.
///
/// Only a missing path or a regular file is replaced. A symbolic link is written through: the
/// file it leads to (which must exist and be a regular file) is replaced, in its own directory,
/// and the link stays. Anything else at `path` (a directory, a device, a FIFO, a socket, a link
/// to one of those or to nothing) is refused before anything is written.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("succulm-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// succulm::fs::write_atomic(dir.join("a.txt"), b"one")?;
/// assert!(succulm::fs::write_atomic(&dir, b"two").is_err()); // a directory: refused
/// assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"one");
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    if path.as_os_str().is_empty() {
        return Err(Error::invalid_arg(
            "path",
            "is empty (expected a file path)",
        ));
    }
    path.file_name().ok_or_else(|| {
        Error::invalid_arg(
            "path",
            format!("{:?} has no file name", path.display().to_string()),
        )
    })?;
    let target = replaceable(path, true)?;
    let path = target.as_path();
    remove_stale_temps(path);
    let tmp = temp_path(path, std::process::id());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic`] after creating `path`'s directory and its missing parents: for a file a run
/// writes into its output directory when it has nothing else to write there (a shard's part).
pub fn write_atomic_creating_dir(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    write_atomic(path, bytes)
}

/// The path a write to `path` replaces: `path` itself when nothing is there or it is a regular
/// file; with `follow`, the regular file a symbolic link at `path` leads to. Errors, naming
/// `path` and what stands there, on anything else: a file of another kind is never replaced by
/// a rename (a device node would become a regular file, a directory's contents would be lost).
pub(crate) fn replaceable(path: &Path, follow: bool) -> Result<PathBuf> {
    let refuse = |what: &str| {
        Error::invalid_arg(
            "output",
            format!(
                "{} is {what}, not a regular file; nothing was written",
                path.display()
            ),
        )
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(path.to_path_buf());
    }
    if !kind.is_symlink() {
        return Err(refuse(kind_name(&kind)));
    }
    if !follow {
        return Err(refuse(
            "a symbolic link (a set of files is replaced as a whole)",
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => std::fs::canonicalize(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        }),
        Ok(m) => Err(refuse(&format!(
            "a symbolic link to {}",
            kind_name(&m.file_type())
        ))),
        Err(_) => Err(refuse("a symbolic link that leads to no file")),
    }
}

/// "a directory", "a device", ... for a file type that is not a regular file.
fn kind_name(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// `.NAME.PID.tmp` beside `path`.
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{pid}.tmp"));
    path.with_file_name(tmp_name)
}

/// Whether process `pid` may still be running. Only Linux's `/proc` answers "no" for sure;
/// elsewhere every process is assumed alive (so nothing is removed).
fn may_be_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    pid == std::process::id() || proc.join(pid.to_string()).exists()
}

/// Removes the temporary files of `path` (`.NAME.PID.tmp`, exactly this pattern) whose writer
/// process no longer runs. Best effort: errors are ignored.
fn remove_stale_temps(path: &Path) {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Some(name) = name.to_str() else {
        return;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !may_be_running(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a set of files into `dir` (created if missing) all or nothing: `write` is handed a
/// fresh temporary directory `dir/.succulm-set.PID.tmp` and writes every file there (returning
/// their paths, each directly in that directory); only when it succeeds are the files renamed
/// into `dir`, one rename each (which needs no space). If `write` fails (a full disk, say), the
/// temporary directory is removed and `dir` keeps exactly what it held before. Files of an
/// earlier set that the new set does not contain are removed, so `dir` never mixes two runs:
/// the set's names are recorded in `dir/.succulm-set` for that. Only missing names and regular
/// files are replaced: a name of the set that stands in `dir` as anything else (a directory, a
/// device, a FIFO, a symbolic link) is refused before the first rename. Returns the final paths.
pub fn write_set_atomic(
    dir: impl AsRef<Path>,
    write: impl FnOnce(&Path) -> Result<Vec<PathBuf>>,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Temporary sets of killed writers.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(".succulm-set."))
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !may_be_running(p)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let tmp = dir.join(format!(".succulm-set.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        let files = write(&tmp)?;
        let mut names = Vec::with_capacity(files.len());
        for f in &files {
            match (f.parent(), f.file_name()) {
                (Some(p), Some(n)) if p == tmp => names.push(n.to_os_string()),
                _ => {
                    return Err(Error::invalid_arg(
                        "write_set_atomic",
                        format!(
                            "{} is not a file directly in the temporary directory",
                            f.display()
                        ),
                    ))
                }
            }
        }
        let manifest: String = names
            .iter()
            .map(|n| n.to_string_lossy().into_owned() + "\n")
            .collect();
        write_atomic(tmp.join(".succulm-set"), manifest.as_bytes())?;
        // Only missing names and regular files are replaced: check them all before the first
        // rename (a rename over a directory fails half-way; over a device or a link it would
        // replace what the user keeps there).
        for n in names.iter().chain(std::iter::once(&".succulm-set".into())) {
            replaceable(&dir.join(n), false)?;
        }
        let previous = std::fs::read_to_string(dir.join(".succulm-set")).unwrap_or_default();
        let mut out = Vec::with_capacity(names.len());
        for n in names.iter().chain(std::iter::once(&".succulm-set".into())) {
            std::fs::rename(tmp.join(n), dir.join(n)).map_err(io(&dir.join(n)))?;
            if n != ".succulm-set" {
                out.push(dir.join(n));
            }
        }
        for old in previous.lines() {
            let stale = Path::new(old);
            // Only plain names of the earlier set, never a path elsewhere.
            if stale.components().count() == 1
                && !old.starts_with('.')
                && !names.iter().any(|n| n.as_os_str() == stale.as_os_str())
            {
                let _ = std::fs::remove_file(dir.join(stale));
            }
        }
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// [`write_set_atomic`] of named texts: writes each `(name, text)` of `files` into `dir` as one
/// set; returns the final paths, in the order given.
pub fn write_text_set(dir: &Path, files: &[(&str, String)]) -> Result<Vec<PathBuf>> {
    write_set_atomic(dir, |tmp| {
        files
            .iter()
            .map(|(name, text)| {
                let p = tmp.join(name);
                write_atomic(&p, text.as_bytes())?;
                Ok(p)
            })
            .collect()
    })
}

/// Writes several files, each `(path, bytes)`, possibly in different directories, all or
/// nothing: every file goes to a temporary `.NAME.PID.tmp` beside its target, written and
/// synced; only when all of them are written are they renamed into place. If any write fails,
/// the temporaries are removed and no target has changed. The renames come last; should one
/// still fail (a target changed meanwhile), the targets renamed before it are put back as they
/// were (from hard-linked copies `.NAME.old.PID.tmp` made before the first rename; where the
/// file system cannot link, such a file stays new), and the new ones removed. The one file that
/// [`write_atomic`] writes, this writes as a set.
///
/// Refused before anything is written: an empty path or one without a file name, a path given
/// twice (the same file, by [`same_file`]), a target that exists and is not a regular file (a
/// directory, a device, a link to no regular file). A symbolic link to a regular file is
/// written through, as by [`write_atomic`].
///
/// ```
/// let dir = std::env::temp_dir().join(format!("succulm-files-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
/// succulm::fs::write_files_atomic(&[(a.as_path(), b"one".as_slice()), (b.as_path(), b"two")])?;
/// // One target that cannot be written: neither changes.
/// let bad = dir.join("no/such/dir/c.txt");
/// assert!(succulm::fs::write_files_atomic(&[(a.as_path(), b"new".as_slice()), (bad.as_path(), b"x")]).is_err());
/// assert_eq!(std::fs::read(&a).unwrap(), b"one");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn write_files_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let shown = |p: &Path| format!("{:?}", p.display().to_string());
    let mut resolved: Vec<PathBuf> = Vec::with_capacity(files.len());
    for (i, (path, _)) in files.iter().enumerate() {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid_arg(
                "path",
                "is empty (expected a file path)",
            ));
        }
        if path.file_name().is_none() {
            return Err(Error::invalid_arg(
                "path",
                format!("{} has no file name", shown(path)),
            ));
        }
        if let Some((other, _)) = files[..i].iter().find(|(o, _)| same_file(o, path)) {
            return Err(Error::invalid_arg(
                "path",
                format!("{} and {} are the same file", shown(other), shown(path)),
            ));
        }
        // What the write replaces: the path, or the regular file a link at it leads to.
        let target = replaceable(path, true)?;
        remove_stale_temps(&target);
        let mut old = target.file_name().unwrap_or_default().to_os_string();
        old.push(".old");
        remove_stale_temps(&target.with_file_name(old));
        resolved.push(target);
    }
    let files: Vec<(&Path, &[u8])> = resolved
        .iter()
        .zip(files)
        .map(|(p, (_, bytes))| (p.as_path(), *bytes))
        .collect();
    let pid = std::process::id();
    let temps: Vec<PathBuf> = files.iter().map(|(p, _)| temp_path(p, pid)).collect();
    let remove_all = |paths: &[PathBuf]| {
        for t in paths {
            let _ = std::fs::remove_file(t);
        }
    };
    for (k, ((_, bytes), tmp)) in files.iter().zip(&temps).enumerate() {
        let written = (|| {
            let mut f = std::fs::File::create(tmp).map_err(io(tmp))?;
            f.write_all(bytes).map_err(io(tmp))?;
            f.sync_all().map_err(io(tmp))
        })();
        if let Err(e) = written {
            remove_all(&temps[..=k]);
            return Err(e);
        }
    }
    // Copies of the targets that exist (hard links: no data is copied), to undo the renames. A
    // backup name that is another file's temporary (a target named `NAME.old` beside `NAME`)
    // is not used.
    let existed: Vec<bool> = files.iter().map(|(p, _)| p.is_file()).collect();
    let backups: Vec<Option<PathBuf>> = files
        .iter()
        .zip(&existed)
        .map(|((p, _), &existed)| {
            let mut old = p.file_name().unwrap_or_default().to_os_string();
            old.push(".old");
            let b = temp_path(&p.with_file_name(old), pid);
            if !existed || temps.contains(&b) {
                return None;
            }
            let _ = std::fs::remove_file(&b);
            std::fs::hard_link(p, &b).is_ok().then_some(b)
        })
        .collect();
    let targets: Vec<&Path> = files.iter().map(|(p, _)| *p).collect();
    let result = rename_all(&targets, &temps, &backups, &existed);
    remove_all(&backups.into_iter().flatten().collect::<Vec<_>>());
    result
}

/// Renames `temps[k]` to `targets[k]` in order; if one fails, undoes the earlier ones (restores
/// `backups[j]`, or removes a target that did not exist) and removes the temporaries left.
fn rename_all(
    targets: &[&Path],
    temps: &[PathBuf],
    backups: &[Option<PathBuf>],
    existed: &[bool],
) -> Result<()> {
    for (k, (path, tmp)) in targets.iter().zip(temps).enumerate() {
        if let Err(source) = std::fs::rename(tmp, path) {
            for ((done, backup), &existed) in targets[..k].iter().zip(backups).zip(existed) {
                match backup {
                    Some(b) => {
                        let _ = std::fs::rename(b, done);
                    }
                    // New: removed. An earlier file that could not be linked stays new (rather
                    // than lost).
                    None if !existed => {
                        let _ = std::fs::remove_file(done);
                    }
                    None => {}
                }
            }
            for t in &temps[k..] {
                let _ = std::fs::remove_file(t);
            }
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(())
}

/// Whether `a` and `b` are the same file: for paths that exist, the same device and inode (so a
/// hard link, a symlink or another spelling of a path is the file itself); for paths that do not
/// exist (yet), the same name in the same directory (resolved). A file that exists is never the
/// same as one that does not.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("succulm-same-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let a = dir.join("a.safetensors");
/// std::fs::write(&a, b"x").unwrap();
/// std::fs::hard_link(&a, dir.join("b.safetensors")).unwrap();
/// assert!(succulm::fs::same_file(&a, &dir.join("b.safetensors")));
/// assert!(succulm::fs::same_file(&a, &dir.join(".").join("a.safetensors")));
/// assert!(succulm::fs::same_file(&dir.join("new"), &dir.join("./new")));
/// assert!(!succulm::fs::same_file(&a, &dir.join("new")));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                ma.dev() == mb.dev() && ma.ino() == mb.ino()
            }
            #[cfg(not(unix))]
            {
                let _ = (ma, mb);
                matches!(
                    (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                    (Ok(x), Ok(y)) if x == y
                )
            }
        }
        (Err(_), Err(_)) => {
            // Neither exists: the same name in the same directory, the directory resolved when
            // it exists.
            let resolved = |p: &Path| -> Option<PathBuf> {
                let name = p.file_name()?;
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                let dir = std::fs::canonicalize(dir)
                    .ok()
                    .or_else(|| std::env::current_dir().ok().map(|c| c.join(dir)))?;
                Some(dir.join(name))
            };
            match (resolved(a), resolved(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            }
        }
        _ => false,
    }
}

pub mod safetensors;

/// `f64::NAN`, the serde default of a float that may be absent.
#[doc(hidden)]
pub fn nan() -> f64 {
    f64::NAN
}

/// Deserialises an `f64` written as a number or as `null` (serde_json writes NaN as `null`).
#[doc(hidden)]
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads the whole file at `path`; an I/O failure names the file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `path` as JSON into a `T`; an I/O or parse failure names the file (and the parse
/// error its line and column).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `value` as pretty JSON; `what` names it in the error (which only a non-string map key or a
/// failing `Serialize` impl can cause).
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid_arg(what, format!("cannot serialise: {e}")))
}

/// Creates `dir` and its missing parents; an I/O failure names the directory.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rename that fails after others succeeded (the target became a non-empty directory after
    /// the checks): the earlier target is restored from its backup, a new one removed, and the
    /// temporaries are gone.
    #[test]
    fn a_failed_rename_undoes_the_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("succulm-rename-all-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("d/inside")).unwrap();
        let (old, new, blocked) = (dir.join("old"), dir.join("new"), dir.join("d"));
        std::fs::write(&old, "before").unwrap();
        let temps: Vec<PathBuf> = ["t1", "t2", "t3"].iter().map(|t| dir.join(t)).collect();
        for t in &temps {
            std::fs::write(t, "after").unwrap();
        }
        let backup = dir.join("old.bak");
        std::fs::hard_link(&old, &backup).unwrap();
        let targets = [old.as_path(), new.as_path(), blocked.as_path()];
        let r = rename_all(
            &targets,
            &temps,
            &[Some(backup), None, None],
            &[true, false, true],
        );
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "before");
        assert!(!new.exists() && blocked.join("inside").is_dir());
        assert!(temps.iter().all(|t| !t.exists()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

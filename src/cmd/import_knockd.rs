//! `knockwrap import-knockd [KNOCKD_CONF] [-o OUT]`: the I/O around `knockd_import::convert`.
//! Reads the knockd file (default `/etc/knockd.conf`, `-` for standard input), prints what was
//! left out or is worth knowing on stderr as `path:line: ...`, checks that the result loads
//! (including the one-time sequence files it names), and writes it to OUT atomically or to
//! standard output. Exit 0 when everything was mapped, 1 when something was left out (the
//! output is still written and valid), 2 when the file cannot be read or parsed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use knockd_import::{convert, Severity};
use knockwrap_config::Config;

use crate::cli::ImportKnockdArgs;
use crate::failure::{Exit, Failure, Outcome};
use crate::output;

pub fn run(args: ImportKnockdArgs) -> Outcome {
    let shown = args.knockd_conf.display().to_string();
    let bytes = read_input(&args.knockd_conf)
        .map_err(|e| Failure::usage(format!("cannot read {shown}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Failure::usage(format!("{shown}:{line}: not valid UTF-8"))
    })?;
    let import = convert(&text, &shown).map_err(|e| {
        Failure::usage(format!("{shown}:{}: cannot convert: {}", e.line, e.message))
    })?;

    let mut stderr = io::stderr().lock();
    for f in &import.findings {
        let kind = match f.severity {
            Severity::LeftOut => "left out",
            Severity::Note => "note",
        };
        let _ = writeln!(stderr, "{shown}:{}: {kind}: {}", f.line, f.message);
    }

    // The converter validates every door; the whole file must load too, files included.
    let out_path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("knockwrap.toml"));
    let mut config = Config::from_toml_str(&import.toml, &out_path).map_err(|e| {
        Failure::failed(format!(
            "internal error: the converted configuration does not validate:\n{e}"
        ))
    })?;
    let mut unloadable = 0;
    for d in &mut config.doors {
        for e in d.load_files(&out_path) {
            unloadable += 1;
            let _ = writeln!(
                stderr,
                "{shown}: left out: door `{}` will not load until this is fixed: {e}",
                d.door.name
            );
        }
    }

    match &args.output {
        Some(path) => write_atomically(path, import.toml.as_bytes())
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?,
        None => output::bytes(import.toml.as_bytes()),
    }
    let _ = writeln!(
        stderr,
        "knockwrap: converted {} of {} knockd door{} from {shown}{}",
        import.doors,
        import.knockd_doors,
        if import.knockd_doors == 1 { "" } else { "s" },
        args.output
            .as_ref()
            .map(|p| format!(" into {}", p.display()))
            .unwrap_or_default()
    );
    Ok(if import.complete() && unloadable == 0 {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        fs::read(path)
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`, so
/// a reader never sees half a configuration.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.import-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

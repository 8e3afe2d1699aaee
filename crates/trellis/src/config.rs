//! `trellis serve --config FILE`: a TOML file whose keys are `serve`'s flags without their
//! dashes (`api-listen = "0.0.0.0:9460"`, `open-network = true`, `ingress-address =
//! ["10.0.0.5", "fd00::5"]`). The file is turned into the flags it stands for and put before the
//! command line's, so every flag is a key (declared once, by the flag) and a flag given on the
//! command line overrides the file's key. A key that is no flag, or a value of the wrong kind,
//! is an error naming the key.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::CommandFactory;

/// `argv` with the keys of the `--config` file (if `serve` was given one) added as flags.
pub fn expand<C: CommandFactory>(argv: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some(serve) = argv.iter().position(|a| a == "serve") else {
        return Ok(argv);
    };
    let rest = &argv[serve + 1..];
    let file = rest.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == "--config" {
            rest.get(i + 1).cloned()
        } else {
            a.strip_prefix("--config=").map(OsString::from)
        }
    });
    let Some(file) = file else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read --config {}", Path::new(&file).display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("--config {}: not TOML", Path::new(&file).display()))?;
    let command = C::command();
    let serve_command = command
        .find_subcommand("serve")
        .expect("the CLI has a serve command");
    let given = |name: &str| {
        rest.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == format!("--{name}") || a.starts_with(&format!("--{name}=")))
        })
    };
    let mut flags = Vec::new();
    for (key, value) in &table {
        let Some(arg) = serve_command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
        else {
            bail!(
                "--config {}: {key:?} is not a flag of trellis serve (keys are the flags without their dashes; see trellis serve --help)",
                Path::new(&file).display()
            );
        };
        if key == "config" {
            bail!(
                "--config {}: a config file cannot name another",
                Path::new(&file).display()
            );
        }
        if given(key) {
            continue; // the command line overrides the file
        }
        let takes_value = arg.get_action().takes_values();
        let wrong = |what: &str| {
            anyhow::anyhow!(
                "--config {}: {key:?} must be {what}",
                Path::new(&file).display()
            )
        };
        match value {
            toml::Value::Boolean(on) if !takes_value => {
                if *on {
                    flags.push(OsString::from(format!("--{key}")));
                }
            }
            _ if !takes_value => return Err(wrong("true or false")),
            toml::Value::Array(items) => {
                for item in items {
                    flags.push(OsString::from(format!(
                        "--{key}={}",
                        scalar(item)
                            .ok_or_else(|| wrong("a string, a number or a list of them"))?
                    )));
                }
            }
            other => {
                let value = scalar(other).ok_or_else(|| wrong("a string or a number"))?;
                flags.push(OsString::from(format!("--{key}={value}")));
            }
        }
    }
    let mut out = argv[..=serve].to_vec();
    out.extend(flags);
    out.extend(rest.iter().cloned());
    Ok(out)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

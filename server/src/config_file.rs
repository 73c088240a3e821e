//! `ferryd --config FILE`: settings from a TOML file, merged under the
//! environment and the command line: a flag beats its `FERRY_*` variable,
//! which beats the file, which beats the default.
//!
//! The file's keys are the long flags' names with underscores
//! (`outstanding_max = 5000` for `--outstanding-max`). Each value goes through
//! the flag's own parser, so the file obeys the same ranges; the caller
//! checks them key by key so an error names the file and the key. A key that
//! is no flag is an error, not ignored: a misspelt setting must not pass
//! unnoticed.

use std::path::Path;

/// A setting a file may hold: its key, its flag, its environment variable.
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub flag: String,
    pub env: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// The file's settings as command-line words (`--flag`, `value`), for keys
/// whose environment variable is not set (the environment beats the file).
/// Each entry is (key, words).
pub fn file_args(path: &Path, settings: &[Setting]) -> Result<Vec<(String, [String; 2])>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    let invalid = |message: String| ConfigError::Invalid { path: shown.clone(), message };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
    let mut args = Vec::new();
    for (key, value) in table {
        let Some(setting) = settings.iter().find(|s| s.key == key) else {
            let known: Vec<&str> = settings.iter().map(|s| s.key.as_str()).collect();
            return Err(invalid(format!("unknown key {key:?}; the keys are {}", known.join(", "))));
        };
        if setting.env.as_ref().is_some_and(|env| std::env::var_os(env).is_some()) {
            continue;
        }
        let value = flag_value(&value).map_err(|problem| invalid(format!("key {key:?}: {problem}")))?;
        args.push((key, [format!("--{}", setting.flag), value]));
    }
    Ok(args)
}

/// A TOML value as its flag takes it: numbers and strings as written, a
/// table (`peers`) as `k=v,k=v`, an array as `a,b`.
fn flag_value(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        // Switches take `true`/`false` (`--insecure-plaintext true`).
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Table(table) => {
            let entries: Result<Vec<String>, String> =
                table.iter().map(|(k, v)| flag_value(v).map(|v| format!("{k}={v}"))).collect();
            entries?.join(",")
        }
        toml::Value::Array(items) => {
            let items: Result<Vec<String>, String> = items.iter().map(flag_value).collect();
            items?.join(",")
        }
        other => return Err(format!("{other} is not a value this setting takes ({})", other.type_str())),
    })
}

/// One `key = value` line of `--print-config`: integers and booleans bare,
/// the rest quoted, so the line reads back as the file takes it.
pub fn toml_line(key: &str, value: &str) -> String {
    if value.parse::<i64>().is_ok() || value == "true" || value == "false" {
        format!("{key} = {value}")
    } else {
        format!("{key} = {}", toml::Value::String(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Vec<Setting> {
        let setting =
            |key: &str, env: &str| Setting { key: key.into(), flag: key.replace('_', "-"), env: Some(env.into()) };
        vec![setting("listen", "FERRY_TEST_CONFIG_LISTEN"), setting("peers", "FERRY_TEST_CONFIG_PEERS")]
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn keys_become_flags_and_tables_become_lists() {
        let file = write("listen = \"0.0.0.0:7070\"\npeers = { 1 = \"a:1\", 2 = \"b:1\" }\n");
        let args = file_args(file.path(), &settings()).expect("valid");
        let words: Vec<[String; 2]> = args.into_iter().map(|(_, words)| words).collect();
        assert_eq!(
            words,
            [["--listen".to_owned(), "0.0.0.0:7070".to_owned()], ["--peers".to_owned(), "1=a:1,2=b:1".to_owned()]]
        );
    }

    #[test]
    fn an_unknown_key_or_a_value_of_the_wrong_kind_names_the_key() {
        let file = write("listne = \"x\"\n");
        let error = file_args(file.path(), &settings()).expect_err("unknown").to_string();
        assert!(error.contains("unknown key \"listne\"") && error.contains("listen"), "{error}");
        let file = write("listen = 1.5\n");
        let error = file_args(file.path(), &settings()).expect_err("a float").to_string();
        assert!(error.contains("key \"listen\"") && error.contains("float"), "{error}");
        let file = write("listen = \n");
        assert!(file_args(file.path(), &settings()).is_err(), "not TOML");
    }
}

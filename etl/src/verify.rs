//! `ferry-etl verify`: recount a closed hour's files against its manifest.

use crate::closer::{read_manifest, sha256_hex, CloseError};
use crate::format::read_part;
use crate::hour::Hour;
use crate::naming::in_hour;
use crate::store::Output;

/// What disagrees with the manifest; empty when the hour is as it says.
pub async fn verify_hour(output: &Output, topic: &str, hour: Hour) -> Result<Vec<String>, CloseError> {
    let Some(manifest) = read_manifest(output, topic, hour).await? else {
        return Ok(vec![format!("{topic} {hour} is not closed: no _SUCCESS")]);
    };
    let mut problems = Vec::new();
    let mut total = 0;
    for file in &manifest.files {
        let path = in_hour(topic, hour, &file.name);
        let Some(bytes) = output.get(&path).await? else {
            problems.push(format!("{path}: in the manifest, missing from storage"));
            continue;
        };
        if bytes.len() as u64 != file.bytes {
            problems.push(format!("{path}: {} bytes, the manifest says {}", bytes.len(), file.bytes));
        }
        let sha256 = sha256_hex(&bytes);
        if sha256 != file.sha256 {
            problems.push(format!("{path}: SHA-256 {sha256}, the manifest says {}", file.sha256));
        }
        match read_part(&file.name, &bytes) {
            Ok(events) => {
                total += events.len() as u64;
                if events.len() as u64 != file.records {
                    problems.push(format!("{path}: {} records, the manifest says {}", events.len(), file.records));
                }
            }
            Err(error) => problems.push(format!("{path}: {error}")),
        }
    }
    if total != manifest.records {
        problems.push(format!("{total} records in the files, the manifest says {}", manifest.records));
    }
    // Parts beside the manifest's would be read by anyone globbing the hour.
    for listed in output.list(&in_hour(topic, hour, "")).await? {
        let is_part = listed.name.starts_with("part-");
        if is_part && !manifest.files.iter().any(|f| f.name == listed.name) {
            problems.push(format!("{}: a part the manifest does not list", in_hour(topic, hour, &listed.name)));
        }
    }
    Ok(problems)
}

//! Listing a project's topics, subscriptions or snapshots. Ferry lists by
//! name, and a project's names are one run of them (`P.` first), so a
//! Pub/Sub page is read from Ferry's pages starting after the last name
//! shown; Pub/Sub's page token is that name's id.

use std::future::Future;

use tonic::Status;

use super::names::{ferry_prefix, project, to_ferry, Kind};
use crate::grpc::ApiError;

/// Ferry's largest list page, used to page through a project's names.
pub const FERRY_PAGE: u32 = 1000;
/// Pub/Sub's default and largest page.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// One of Ferry's pages: each item's Ferry name with what Pub/Sub shows of
/// it (`None`: nothing), and whether Ferry has more after it.
pub struct FerryPage<T> {
    pub items: Vec<(String, Option<T>)>,
    pub more: bool,
}

/// A page of a project's `kind`s, as a Pub/Sub list call asks for it.
pub struct ProjectListing {
    prefix: String,
    wanted: usize,
    /// The Ferry name the next Ferry page starts after.
    after: String,
}

impl ProjectListing {
    /// From the call's `project` (`projects/P`), `page_size` and `page_token`.
    pub fn new(project_name: &str, kind: Kind, page_size: i32, page_token: &str) -> Result<Self, ApiError> {
        let project = project("project", project_name)?;
        let prefix = ferry_prefix(&project);
        let after = match page_token {
            "" => prefix.clone(),
            token => to_ferry("page_token", kind, &format!("{project_name}/{}/{token}", kind.collection()))?,
        };
        Ok(Self { prefix, wanted: self::page_size(page_size)?, after })
    }

    /// The page: what `ferry_page(after)` answers, page after page, until
    /// the page is full or the project's names end; with the token of the
    /// next page (empty: none).
    pub async fn collect<T, F, Fut>(mut self, mut ferry_page: F) -> Result<(Vec<T>, String), Status>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<FerryPage<T>, Status>>,
    {
        let mut shown = Vec::new();
        loop {
            let page = ferry_page(self.after.clone()).await?;
            for (name, item) in page.items {
                if !name.starts_with(&self.prefix) {
                    return Ok((shown, String::new()));
                }
                self.after = name;
                shown.extend(item);
                if shown.len() == self.wanted {
                    return Ok((shown, self.after[self.prefix.len()..].to_owned()));
                }
            }
            if !page.more {
                return Ok((shown, String::new()));
            }
        }
    }
}

/// A page size as Pub/Sub takes it: 0 the default, negative refused.
pub fn page_size(size: i32) -> Result<usize, ApiError> {
    match size {
        0 => Ok(PAGE_DEFAULT),
        1.. => Ok((size as usize).min(PAGE_MAX)),
        _ => Err(ApiError::invalid("page_size", "must not be negative")),
    }
}

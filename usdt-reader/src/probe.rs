//! Probe sites, owned and serializable.

use crate::args::{ArgError, ArgSpec};
use crate::types::Signature;
use serde::{Serialize, Serializer};

/// One probe site of an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The provider name.
    pub provider: String,
    /// The probe name.
    pub name: String,
    /// The site's link-time virtual address, after the `.stapsdt.base`
    /// adjustment.
    pub address: u64,
    /// The site's file offset, where a uprobe is placed:
    /// `address - p_vaddr + p_offset` of the `PT_LOAD` segment holding it.
    pub file_offset: u64,
    /// The semaphore's link-time virtual address (adjusted like `address`);
    /// `None` when the probe has no semaphore.
    pub semaphore: Option<u64>,
    /// The semaphore's file offset: the kernel's `ref_ctr_offset`.
    pub semaphore_offset: Option<u64>,
    /// The raw argument string, e.g. `-4@%edi 8@-16(%rbp)`.
    pub args: String,
    /// The parsed arguments, or why one of them could not be parsed.
    #[serde(serialize_with = "serialize_specs")]
    pub arg_specs: Result<Vec<ArgSpec>, ArgError>,
    /// Typed metadata from `.usdt.types`, for sites emitted by this SDK.
    pub signature: Option<Signature>,
}

impl Probe {
    /// `provider:name`.
    pub fn qualified_name(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }

    /// `provider:name(id: u64, ...)` when the signature is known, else
    /// `provider:name`.
    pub fn display_signature(&self) -> String {
        match &self.signature {
            Some(signature) => format!("{}:{}{signature}", self.provider, self.name),
            None => self.qualified_name(),
        }
    }
}

/// Parsed specs as a list; a parse failure as `{"error": "message"}`.
fn serialize_specs<S: Serializer>(
    specs: &Result<Vec<ArgSpec>, ArgError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Failure<'a> {
        error: &'a ArgError,
    }
    match specs {
        Ok(specs) => specs.serialize(serializer),
        Err(error) => Failure { error }.serialize(serializer),
    }
}

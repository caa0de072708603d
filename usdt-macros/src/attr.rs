//! The arguments of `#[provider(...)]`.

use crate::name::name_problem;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Path, Token};

/// Parsed `#[provider(name = "...", crate = "...")]` arguments.
#[derive(Default)]
pub(crate) struct ProviderArgs {
    /// The provider name, overriding the module's name.
    pub name: Option<LitStr>,
    /// The path of the usdt-runtime crate, `::usdt_runtime` by default.
    pub krate: Option<Path>,
}

/// One `key = "value"` pair.
struct KeyValue {
    key: Ident,
    value: LitStr,
}

impl Parse for KeyValue {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(KeyValue { key, value })
    }
}

impl Parse for ProviderArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = ProviderArgs::default();
        for pair in Punctuated::<KeyValue, Token![,]>::parse_terminated(input)? {
            match pair.key.to_string().as_str() {
                "name" => {
                    if args.name.is_some() {
                        return Err(syn::Error::new_spanned(&pair.key, "`name` given twice"));
                    }
                    if let Some(problem) = name_problem(&pair.value.value()) {
                        return Err(syn::Error::new_spanned(
                            &pair.value,
                            format!("invalid USDT provider name: {problem}"),
                        ));
                    }
                    args.name = Some(pair.value);
                }
                "crate" => {
                    if args.krate.is_some() {
                        return Err(syn::Error::new_spanned(&pair.key, "`crate` given twice"));
                    }
                    args.krate = Some(pair.value.parse()?);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &pair.key,
                        "unknown provider option; expected `name = \"...\"` or `crate = \"...\"`",
                    ));
                }
            }
        }
        Ok(args)
    }
}

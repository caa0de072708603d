//! `probe!`: the plain probe macro's checks and expansion. usdt-runtime's
//! `probe!` forwards here with its own path, so that bad names and too many
//! arguments are reported at the offending tokens while the code is only
//! being checked, and an argument of an unsupported type is reported at that
//! argument.

use crate::name::name_problem;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token};
use usdt_format::MAX_ARGS;

/// `PATH; provider, name, arg, ...` where PATH is usdt-runtime's path.
pub struct ProbeInput {
    krate: TokenStream,
    provider: Ident,
    name: Ident,
    args: Vec<Expr>,
}

impl Parse for ProbeInput {
    fn parse(input: ParseStream) -> syn::Result<ProbeInput> {
        // The runtime's path (`$crate` as usdt-runtime's macro passes it),
        // up to the `;`.
        let mut krate = TokenStream::new();
        while !input.peek(Token![;]) {
            krate.extend([input.parse::<TokenTree>()?]);
        }
        input.parse::<Token![;]>()?;
        let provider = input.parse::<Ident>().map_err(|e| {
            syn::Error::new(e.span(), "expected `probe!(provider, name, arg, ...)`")
        })?;
        input.parse::<Token![,]>()?;
        let name = input.parse::<Ident>().map_err(|e| {
            syn::Error::new(e.span(), "expected `probe!(provider, name, arg, ...)`")
        })?;
        let mut args = Vec::new();
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
            args = Punctuated::<Expr, Token![,]>::parse_terminated(input)?
                .into_iter()
                .collect();
        }
        Ok(ProbeInput {
            krate,
            provider,
            name,
            args,
        })
    }
}

/// Checks the names and the argument count, and emits the site with each
/// argument borrowed where it is written.
pub fn expand(input: ProbeInput) -> syn::Result<TokenStream> {
    let ProbeInput {
        krate,
        provider,
        name,
        args,
    } = input;
    for (ident, what) in [(&provider, "provider"), (&name, "probe")] {
        if let Some(problem) = name_problem(&ident.to_string()) {
            return Err(syn::Error::new(
                ident.span(),
                format!("invalid USDT {what} name: {problem}"),
            ));
        }
    }
    if let Some(extra) = args.get(MAX_ARGS) {
        return Err(syn::Error::new(
            extra.span(),
            format!("a USDT probe takes at most {MAX_ARGS} arguments"),
        ));
    }
    let provider = LitStr::new(&provider.to_string(), Span::call_site());
    let name = LitStr::new(&name.to_string(), Span::call_site());
    let borrowed = args.iter().map(|arg| quote_spanned! {arg.span()=> &#arg});
    Ok(quote! {
        #krate::__usdt_site!(
            provider: [#provider],
            name: [#name],
            semaphore: [],
            args: [#(_ = #borrowed),*]
        )
    })
}

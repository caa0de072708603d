//! `probe!`: the plain probe macro's checks and expansion. usdt-runtime's
//! `probe!` forwards here with its own path, so that bad names and too many
//! arguments are reported at the offending tokens while the code is only
//! being checked, and an argument of an unsupported type is reported at that
//! argument.

use crate::name::name_problem;
use crate::spans::checked_arg;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token};
use usdt_format::MAX_ARGS;

/// `PATH; provider, name, arg, ...` where PATH is usdt-runtime's path.
pub(crate) struct ProbeInput {
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
        let provider = parse_name(input, "provider")?;
        if input.is_empty() {
            return Err(syn::Error::new(
                provider.span(),
                "expected a probe name after the provider, as in `probe!(provider, name, arg, ...)`",
            ));
        }
        input.parse::<Token![,]>()?;
        let name = parse_name(input, "probe")?;
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

/// A provider or probe name: an identifier followed by `,` or the end. A
/// name written as something else (`my-app`, `"app"`) is an error at the
/// first token that does not belong, saying what a name is.
fn parse_name(input: ParseStream, what: &str) -> syn::Result<Ident> {
    let rule = "an identifier of ASCII letters, digits and `_`";
    let Ok(ident) = input.parse::<Ident>() else {
        return Err(input.error(format!(
            "expected a {what} name, {rule}, as in `probe!(provider, name, arg, ...)`"
        )));
    };
    if input.is_empty() || input.peek(Token![,]) {
        return Ok(ident);
    }
    let offending = input.span();
    let mut text = ident.to_string();
    while !input.is_empty() && !input.peek(Token![,]) {
        text.push_str(&input.parse::<TokenTree>()?.to_string());
    }
    let suggestion: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Err(syn::Error::new(
        offending,
        format!("a {what} name is {rule}: `{text}` is not one (write `{suggestion}`)"),
    ))
}

/// Checks the names and the argument count, and emits the site with each
/// argument borrowed where it is written.
pub(crate) fn expand(input: ProbeInput) -> syn::Result<TokenStream> {
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
    let probe_arg = quote!(__UsdtProbeArg);
    let checked = args
        .iter()
        .map(|arg| checked_arg(&probe_arg, arg.to_token_stream(), arg));
    Ok(quote! {{
        #[allow(unused_imports)]
        use #krate::ProbeArg as __UsdtProbeArg;
        #krate::__usdt_site!(
            provider: [#provider],
            name: [#name],
            semaphore: [],
            args: [#(_ = #checked),*]
        )
    }})
}

//! Code generation for `#[provider]`: one guarded function and one module
//! (semaphore, `enabled()`) per probe. Argument types are checked where they
//! are declared: each becomes a `where TYPE: ProbeArg` (or `JsonArg`) bound
//! spanned at the declared type, so an unsupported type is reported there,
//! once.

use crate::attr::ProviderArgs;
use crate::decl::{Errors, ProbeDecl};
use crate::name::name_problem;
use crate::param_type::{LifetimeParams, ParamType, is_builtin_arg};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::HashMap;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{AttrStyle, Item, ItemMod, LitStr, Path};
use usdt_format::PROBES_SECTION;

/// Expands `#[provider(args)] mod ... { ... }`.
pub fn expand(args: ProviderArgs, module: ItemMod) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let krate: Path = args
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::usdt_runtime));
    let provider = match &args.name {
        Some(name) => name.value(),
        None => {
            let name = module.ident.unraw().to_string();
            if let Some(problem) = name_problem(&name) {
                errors.push(syn::Error::new_spanned(
                    &module.ident,
                    format!(
                        "invalid USDT provider name: {problem} (rename the module or use \
                         #[provider(name = \"...\")])"
                    ),
                ));
            }
            name
        }
    };
    let Some((_, items)) = &module.content else {
        return Err(syn::Error::new_spanned(
            &module,
            "a provider module needs a body: `mod name { fn probe(arg: Type, ...); }`",
        ));
    };

    let mut probes = Vec::new();
    let mut others = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for item in items {
        match item {
            Item::Verbatim(tokens) => match ProbeDecl::parse(tokens.clone()) {
                Ok(decl) => {
                    if seen.insert(decl.name.clone(), decl.ident.span()).is_some() {
                        errors.push(syn::Error::new_spanned(
                            &decl.ident,
                            format!("probe `{}` is declared twice", decl.name),
                        ));
                    }
                    probes.push(decl);
                }
                Err(e) => errors.push(e),
            },
            Item::Fn(f) => errors.push(syn::Error::new_spanned(
                &f.block,
                "a probe declaration has no body: end it with `;`",
            )),
            other => others.push(other),
        }
    }
    errors.finish()?;

    let (inner_attrs, outer_attrs): (Vec<_>, Vec<_>) = module
        .attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    let vis = &module.vis;
    let unsafety = &module.unsafety;
    let ident = &module.ident;
    let generated = probes.iter().map(|p| expand_probe(&krate, &provider, p));
    Ok(quote! {
        #(#outer_attrs)*
        #vis #unsafety mod #ident {
            #(#inner_attrs)*
            #[allow(unused_imports)]
            use super::*;
            #(#others)*
            #(#generated)*
        }
    })
}

/// The items of one probe.
fn expand_probe(krate: &Path, provider: &str, probe: &ProbeDecl) -> TokenStream {
    let ProbeDecl {
        attrs,
        cfgs,
        vis,
        ident,
        name,
        params,
    } = probe;
    let full_name = format!("{provider}:{name}");
    let symbol = LitStr::new(&format!("{provider}_{name}_semaphore"), Span::call_site());
    let provider_lit = LitStr::new(provider, Span::call_site());
    let name_lit = LitStr::new(name, Span::call_site());

    let mut lifetimes = LifetimeParams::new();
    let mut type_params = Vec::new();
    let mut returns = Vec::new();
    let mut conversions = Vec::new();
    let mut bounds = Vec::new();
    let mut values = Vec::new();
    for (i, param) in params.iter().enumerate() {
        let value = format_ident!("__usdt_v{}", i);
        let generic = format_ident!("__UsdtV{}", i);
        let span = param.ty.span();
        match &param.class {
            ParamType::Str => {
                type_params.push(quote!(#generic: ::core::convert::AsRef<str>));
                returns.push(quote!(#generic));
                conversions.push(quote! {
                    let #value: &str = ::core::convert::AsRef::<str>::as_ref(&#value);
                });
            }
            ParamType::Bytes => {
                type_params.push(quote!(#generic: ::core::convert::AsRef<[u8]>));
                returns.push(quote!(#generic));
                conversions.push(quote! {
                    let #value: &[u8] = ::core::convert::AsRef::<[u8]>::as_ref(&#value);
                });
            }
            ParamType::CStr => {
                type_params.push(quote!(#generic: ::core::convert::AsRef<::core::ffi::CStr>));
                returns.push(quote!(#generic));
                conversions.push(quote! {
                    let #value: &::core::ffi::CStr =
                        ::core::convert::AsRef::<::core::ffi::CStr>::as_ref(&#value);
                });
            }
            ParamType::Borrowed(ty) => {
                let general = lifetimes.generalize(ty);
                type_params.push(quote!(#generic: ::core::borrow::Borrow<#general>));
                returns.push(quote!(#generic));
                conversions.push(quote! {
                    let #value: &#general = ::core::borrow::Borrow::<#general>::borrow(&#value);
                });
                if !is_builtin_arg(ty) {
                    let krate = respanned(&krate, span);
                    bounds.push(quote_spanned! {span=> #general: #krate::ProbeArg });
                }
            }
            ParamType::Json(ty) => {
                let general = lifetimes.generalize(ty);
                type_params.push(quote!(#generic: ::core::borrow::Borrow<#general>));
                returns.push(quote!(#generic));
                let krate = respanned(&krate, span);
                bounds.push(quote_spanned! {span=> #general: #krate::JsonArg });
                conversions.push(quote! {
                    let #value = #krate::__private::Json::encode::<#general>(
                        ::core::borrow::Borrow::<#general>::borrow(&#value),
                    );
                });
            }
            ParamType::Exact(ty) => {
                let general = lifetimes.generalize(ty);
                returns.push(quote!(#general));
                if !is_builtin_arg(ty) {
                    let krate = respanned(&krate, span);
                    bounds.push(quote_spanned! {span=> #general: #krate::ProbeArg });
                }
            }
        }
        values.push(value);
    }
    let arg_names = params
        .iter()
        .map(|p| LitStr::new(&p.name, Span::call_site()));
    let site = quote! {
        #krate::__usdt_site!(
            provider: [#provider_lit],
            name: [#name_lit],
            semaphore: [self::#ident::SEMAPHORE],
            args: [#(#arg_names = &#values),*]
        );
    };

    let has_docs = attrs.iter().any(|a| a.path().is_ident("doc"));
    let separator = has_docs.then(|| quote!(#[doc = ""]));
    let signature = format!("{full_name}({})", probe.signature());
    let lifetime_params = &lifetimes.params;
    let function = if params.is_empty() {
        let doc = format!(
            " Fires the USDT probe `{signature}` when a tracer has it enabled; otherwise \
             costs one load and a branch."
        );
        quote! {
            #(#cfgs)*
            #(#attrs)*
            #separator
            #[doc = #doc]
            #[inline(always)]
            #vis fn #ident() {
                if self::#ident::SEMAPHORE.is_enabled() {
                    ::core::hint::cold_path();
                    #site
                }
            }
        }
    } else {
        let doc = format!(
            " Fires the USDT probe `{signature}` when a tracer has it enabled. `args` returns \
             the arguments{}; it runs only while the probe is enabled, so the probe otherwise \
             costs one load and a branch.",
            if params.len() == 1 {
                ""
            } else {
                " as a tuple in declaration order"
            }
        );
        let (ret, bind) = if params.len() == 1 {
            (quote!(#(#returns)*), quote!(#(#values)*))
        } else {
            (quote!((#(#returns),*)), quote!((#(#values),*)))
        };
        quote! {
            #(#cfgs)*
            #(#attrs)*
            #separator
            #[doc = #doc]
            #[inline(always)]
            #[allow(clippy::type_complexity)]
            #vis fn #ident<#(#lifetime_params,)* #(#type_params,)* __UsdtArgs>(args: __UsdtArgs)
            where
                #(#bounds,)*
                __UsdtArgs: ::core::ops::FnOnce() -> #ret,
            {
                if self::#ident::SEMAPHORE.is_enabled() {
                    ::core::hint::cold_path();
                    let #bind = args();
                    #(#conversions)*
                    #site
                }
            }
        }
    };

    let module_doc = format!(" The semaphore of the USDT probe `{full_name}`.");
    let static_doc = format!(
        " The semaphore of `{full_name}`, named `{}` (a hidden symbol) in section `{PROBES_SECTION}`: \
         tracers raise it while they have the probe enabled.",
        symbol.value()
    );
    let enabled_doc = format!(" Whether a tracer has the USDT probe `{full_name}` enabled.");
    quote! {
        #function

        #(#cfgs)*
        #[doc = #module_doc]
        #vis mod #ident {
            #krate::__usdt_semaphore! {
                #[doc = #static_doc]
                #[allow(dead_code)]
                pub static SEMAPHORE = #symbol;
            }

            #[doc = #enabled_doc]
            #[inline(always)]
            #[allow(dead_code)]
            pub fn enabled() -> bool {
                SEMAPHORE.is_enabled()
            }
        }

    }
}

/// `tokens` with every span set to `span`, so that an error about a bound
/// built from them points at the user's type rather than at the attribute.
fn respanned(tokens: &impl quote::ToTokens, span: Span) -> TokenStream {
    tokens
        .to_token_stream()
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respanned(&group.stream(), span));
                inner.set_span(span);
                tree = proc_macro2::TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

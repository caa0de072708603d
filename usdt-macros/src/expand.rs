//! Code generation for `#[provider]`: one guarded function and one module
//! (semaphore, `enabled()`) per probe. Declared types are checked in the
//! function's body, by calls spanned at the declared type (`ProbeArg`, or
//! `JsonArg` for `#[json]`), so an unsupported type is reported there, once,
//! and never again where the probe is called. What a call may return for a
//! parameter is a bound on the function whose trait (`StrArg`, `RefArg`, ...)
//! says which values the parameter takes.

use crate::attr::ProviderArgs;
use crate::decl::{Errors, ProbeDecl};
use crate::name::name_problem;
use crate::param_type::{LifetimeParams, ParamType};
use crate::spans::{checked_arg, spanned_over, trait_call};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use std::collections::HashMap;
use syn::ext::IdentExt;
use syn::{AttrStyle, Item, ItemMod, LitStr, Path};
use usdt_format::PROBES_SECTION;

/// Expands `#[provider(args)] mod ... { ... }`.
pub(crate) fn expand(args: ProviderArgs, module: ItemMod) -> syn::Result<TokenStream> {
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
    let mut site_args = Vec::new();
    let mut values = Vec::new();
    let private = quote!(#krate::__private);
    let probe_arg = quote!(#krate::ProbeArg);
    for (i, param) in params.iter().enumerate() {
        let value = format_ident!("__usdt_v{}", i);
        let generic = format_ident!("__UsdtV{}", i);
        // The bound a returned value must meet, spanned at the declared type
        // so that "required by this bound" points there; its trait says
        // which values the parameter takes.
        let accept = |bound: TokenStream| {
            let bound = spanned_over(&bound, &param.ty);
            quote!(#generic: #bound)
        };
        // What the site receives: a value of the declared type (`str` for
        // `&str`), as a place expression.
        let site_value = match &param.class {
            ParamType::Str | ParamType::Bytes | ParamType::CStr => {
                let (accepts, method, target) = match param.class {
                    ParamType::Str => (quote!(StrArg), "probe_str", quote!(str)),
                    ParamType::Bytes => (quote!(BytesArg), "probe_bytes", quote!([u8])),
                    _ => (quote!(CStrArg), "probe_cstr", quote!(::core::ffi::CStr)),
                };
                let method = format_ident!("{method}");
                type_params.push(accept(quote!(#private::#accepts)));
                returns.push(quote!(#generic));
                // The value converts to the standard type whatever the
                // declaration names; name the declared type too, so that
                // the `use` that brought it (`use std::ffi::CStr`) counts
                // as used.
                let declared = lifetimes.generalize(&param.ty);
                conversions.push(quote! {
                    let _: ::core::marker::PhantomData<#declared> = ::core::marker::PhantomData;
                    let #value: &#target = #private::#accepts::#method(&#value);
                });
                quote!(*#value)
            }
            ParamType::Borrowed(ty) => {
                let general = lifetimes.generalize(ty);
                type_params.push(accept(quote!(#private::RefArg<#general>)));
                returns.push(quote!(#generic));
                conversions.push(quote! {
                    let #value: &#general = #private::RefArg::<#general>::probe_ref(&#value);
                });
                quote!(*#value)
            }
            ParamType::Json(ty) => {
                let general = lifetimes.generalize(ty);
                type_params.push(accept(quote!(#private::RefArg<#general>)));
                returns.push(quote!(#generic));
                // `JsonArg::to_json` reports a type that is not
                // `Serialize` at the declared type, once.
                let to_json = trait_call(
                    &quote!(#krate::JsonArg),
                    "to_json",
                    quote!(*#value),
                    &param.ty,
                );
                conversions.push(quote! {
                    let #value: &#general = #private::RefArg::<#general>::probe_ref(&#value);
                    let #value = #private::Json::from_text(#to_json);
                });
                quote!(#value)
            }
            ParamType::Exact(ty) => {
                let general = lifetimes.generalize(ty);
                returns.push(quote!(#general));
                quote!(#value)
            }
        };
        site_args.push(checked_arg(&probe_arg, site_value, &param.ty));
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
            args: [#(#arg_names = #site_args),*]
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

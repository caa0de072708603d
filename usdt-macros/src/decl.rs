//! Probe declarations: the `fn name(arg: Type, ...);` items of a provider
//! module, validated.

use crate::name::name_problem;
use crate::param_type::ParamType;
use proc_macro2::TokenStream;
use syn::{Attribute, FnArg, ForeignItemFn, Ident, Pat, ReturnType, Safety, Type, Visibility};
use usdt_format::MAX_ARGS;

/// One probe of a provider.
pub(crate) struct ProbeDecl {
    /// Attributes for the generated function (doc comments and others).
    pub attrs: Vec<Attribute>,
    /// `#[cfg]`/`#[cfg_attr]` attributes, repeated on every generated item.
    pub cfgs: Vec<Attribute>,
    /// The declared visibility.
    pub vis: Visibility,
    /// The function's identifier, as written.
    pub ident: Ident,
    /// The probe name in the notes.
    pub name: String,
    /// The parameters, in order.
    pub params: Vec<Param>,
}

/// One parameter of a probe.
pub(crate) struct Param {
    /// The name recorded in `.usdt.types`.
    pub name: String,
    /// The declared type, as written.
    pub ty: Type,
    /// What the declared type means.
    pub class: ParamType,
}

impl ProbeDecl {
    /// Parses the tokens of a body-less `fn` item in a provider module.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<ProbeDecl> {
        let item: ForeignItemFn = syn::parse2(tokens)?;
        let mut errors = Errors::default();
        let sig = &item.sig;
        let name = sig.ident.unraw_string();
        if let Some(problem) = name_problem(&name) {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                format!("invalid USDT probe name: {problem}"),
            ));
        }
        if let Some(t) = &item.modifiers.defaultness {
            errors.push(syn::Error::new_spanned(t, "a probe cannot be `default`"));
        }
        if let Some(t) = &sig.constness {
            errors.push(syn::Error::new_spanned(t, "a probe cannot be `const`"));
        }
        if let Some(t) = &sig.asyncness {
            errors.push(syn::Error::new_spanned(t, "a probe cannot be `async`"));
        }
        match &sig.safety {
            Safety::Unsafe(t) => {
                errors.push(syn::Error::new_spanned(t, "a probe cannot be `unsafe`"))
            }
            Safety::Safe(t) => errors.push(syn::Error::new_spanned(
                t,
                "a probe declaration takes no `safe`: probes are always safe to call",
            )),
            _ => {}
        }
        if let Some(t) = &sig.abi {
            errors.push(syn::Error::new_spanned(t, "a probe has no ABI"));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.push(syn::Error::new_spanned(
                &sig.generics,
                "a probe cannot be generic: give its arguments concrete types",
            ));
        }
        if let Some(v) = &sig.variadic {
            errors.push(syn::Error::new_spanned(v, "a probe cannot be variadic"));
        }
        if let ReturnType::Type(_, ty) = &sig.output {
            errors.push(syn::Error::new_spanned(ty, "a probe returns nothing"));
        }

        let mut params = Vec::new();
        let mut slots = 0;
        for (i, input) in sig.inputs.iter().enumerate() {
            let pat_type = match input {
                FnArg::Receiver(r) => {
                    errors.push(syn::Error::new_spanned(r, "a probe takes no `self`"));
                    continue;
                }
                FnArg::Typed(t) => t,
            };
            if i == MAX_ARGS {
                errors.push(syn::Error::new_spanned(
                    input,
                    format!("a probe takes at most {MAX_ARGS} arguments"),
                ));
            }
            let mut json = false;
            for attr in &pat_type.attrs {
                if attr.path().is_ident("json") && matches!(attr.meta, syn::Meta::Path(_)) {
                    json = true;
                } else {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        "unsupported attribute on a probe argument; only `#[json]` is allowed",
                    ));
                }
            }
            let param_name = match &*pat_type.pat {
                Pat::Ident(p)
                    if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() =>
                {
                    p.ident.unraw_string()
                }
                other => {
                    errors.push(syn::Error::new_spanned(
                        other,
                        "name each probe argument with a plain identifier",
                    ));
                    continue;
                }
            };
            let class = match ParamType::classify(&pat_type.ty, json) {
                Ok(class) => class,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let before = slots;
            slots += class.slots();
            if before <= MAX_ARGS && slots > MAX_ARGS && i < MAX_ARGS {
                errors.push(syn::Error::new_spanned(
                    input,
                    format!(
                        "this argument makes {slots} note arguments; a probe has at most {MAX_ARGS} \
                         (&str, &[u8], u128, i128 and #[json] arguments take two each)"
                    ),
                ));
            }
            params.push(Param {
                name: param_name,
                ty: (*pat_type.ty).clone(),
                class,
            });
        }

        let (cfgs, attrs) = item
            .attrs
            .into_iter()
            .partition(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"));
        errors.finish()?;
        Ok(ProbeDecl {
            attrs,
            cfgs,
            vis: item.vis,
            ident: item.sig.ident,
            name,
            params,
        })
    }

    /// The signature as a reader shows it: `id: u64, method: &str`.
    pub(crate) fn signature(&self) -> String {
        self.params
            .iter()
            .map(|p| {
                let ty = p.ty.to_token_stream_string();
                match p.class {
                    ParamType::Json(_) => format!("{}: {ty} (json)", p.name),
                    _ => format!("{}: {ty}", p.name),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Errors collected while validating, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every error pushed, if any.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An identifier's name without the `r#` of a raw identifier.
trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        use syn::ext::IdentExt;
        self.unraw().to_string()
    }
}

/// A type's source text, spaced the way people write it.
trait TypeText {
    fn to_token_stream_string(&self) -> String;
}

impl TypeText for Type {
    fn to_token_stream_string(&self) -> String {
        use quote::ToTokens;
        let text = self.to_token_stream().to_string();
        text.replace("& ", "&")
            .replace(" < ", "<")
            .replace("< ", "<")
            .replace(" >", ">")
            .replace(" ,", ",")
            .replace(" :: ", "::")
            .replace(":: ", "::")
            .replace("[ ", "[")
            .replace(" ]", "]")
            .replace(" ;", ";")
    }
}

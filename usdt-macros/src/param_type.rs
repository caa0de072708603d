//! What a probe parameter's declared type means: which values the argument
//! closure may return for it, and how the probe passes it.

use proc_macro2::Span;
use std::collections::HashMap;
use syn::visit_mut::{self, VisitMut};
use syn::{
    GenericArgument, Lifetime, ParenthesizedGenericArguments, PathArguments, Type, TypeFnPtr,
    TypePath, TypeReference,
};
use usdt_format::ArgKind;

/// The classes of parameter types. String-like and byte-like parameters
/// accept any value that can lend the borrowed form, so a closure may
/// return an owned `String` for a `&str` parameter.
#[derive(Clone)]
pub(crate) enum ParamType {
    /// `&str` or `String`: accepts `impl AsRef<str>`.
    Str,
    /// `&[u8]` or `Vec<u8>`: accepts `impl AsRef<[u8]>`.
    Bytes,
    /// `&CStr` or `CString`: accepts `impl AsRef<CStr>`.
    CStr,
    /// Another `&T`: accepts `impl Borrow<T>`; `T` must be a probe argument.
    Borrowed(Type),
    /// `#[json] T` or `#[json] &T`: accepts `impl Borrow<T>`, `T: Serialize`.
    Json(Type),
    /// Any other type, passed exactly as declared.
    Exact(Type),
}

impl ParamType {
    /// Classifies the declared type `ty` (`json`: the parameter is marked
    /// `#[json]`).
    pub(crate) fn classify(ty: &Type, json: bool) -> syn::Result<ParamType> {
        let ty = strip_groups(ty);
        if let Type::ImplTrait(_) = ty {
            return Err(syn::Error::new_spanned(
                ty,
                "`impl Trait` is not supported in probe declarations; name the type",
            ));
        }
        if let Type::Reference(TypeReference {
            mutability: Some(_),
            ..
        }) = ty
        {
            return Err(syn::Error::new_spanned(
                ty,
                "probe arguments are read, never written: declare `&T` instead of `&mut T`",
            ));
        }
        if json {
            let inner = match ty {
                Type::Reference(r) => strip_groups(&r.elem),
                other => other,
            };
            return Ok(ParamType::Json(inner.clone()));
        }
        match ty {
            Type::Reference(r) => {
                let elem = strip_groups(&r.elem);
                if is_path(elem, &[&["str"]]) {
                    Ok(ParamType::Str)
                } else if is_path(elem, CSTR_PATHS) {
                    Ok(ParamType::CStr)
                } else if matches!(elem, Type::Slice(s) if is_path(strip_groups(&s.elem), &[&["u8"]]))
                {
                    Ok(ParamType::Bytes)
                } else {
                    Ok(ParamType::Borrowed(elem.clone()))
                }
            }
            _ if is_path(ty, STRING_PATHS) => Ok(ParamType::Str),
            _ if is_path(ty, CSTRING_PATHS) => Ok(ParamType::CStr),
            _ if is_vec_u8(ty) => Ok(ParamType::Bytes),
            other => Ok(ParamType::Exact(other.clone())),
        }
    }

    /// The argument's kind where the syntax tells it and it matters for
    /// [`slots`](ParamType::slots): strings, bytes, C strings, JSON and the
    /// 128-bit integers.
    fn kind(&self) -> Option<ArgKind> {
        match self {
            ParamType::Str => Some(ArgKind::Str),
            ParamType::Bytes => Some(ArgKind::Bytes),
            ParamType::CStr => Some(ArgKind::CStr),
            ParamType::Json(_) => Some(ArgKind::Json),
            ParamType::Borrowed(ty) | ParamType::Exact(ty) => [ArgKind::U128, ArgKind::I128]
                .into_iter()
                .find(|kind| is_path(ty, &[&[kind.name()]])),
        }
    }

    /// How many note arguments the parameter takes, as far as the syntax
    /// tells (a type alias of `u128` counts one here; the runtime's
    /// compile-time check counts it right).
    pub(crate) fn slots(&self) -> usize {
        self.kind().map_or(1, ArgKind::slots)
    }
}

const STRING_PATHS: &[&[&str]] = &[
    &["String"],
    &["std", "string", "String"],
    &["alloc", "string", "String"],
];
const CSTR_PATHS: &[&[&str]] = &[&["CStr"], &["std", "ffi", "CStr"], &["core", "ffi", "CStr"]];
const CSTRING_PATHS: &[&[&str]] = &[
    &["CString"],
    &["std", "ffi", "CString"],
    &["alloc", "ffi", "CString"],
];
const VEC_PATHS: &[&[&str]] = &[&["Vec"], &["std", "vec", "Vec"], &["alloc", "vec", "Vec"]];

/// Removes the invisible groups and parentheses around a type.
fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip_groups(&g.elem),
        Type::Paren(p) => strip_groups(&p.elem),
        other => other,
    }
}

/// The identifiers of a plain path type (no `<...>` arguments except on
/// the last segment, no qualified self).
fn path_idents(ty: &Type) -> Option<(Vec<String>, &PathArguments)> {
    let Type::Path(TypePath {
        qself: None, path, ..
    }) = ty
    else {
        return None;
    };
    let last = path.segments.last()?;
    if path
        .segments
        .iter()
        .take(path.segments.len() - 1)
        .any(|s| !s.arguments.is_none())
    {
        return None;
    }
    let idents = path.segments.iter().map(|s| s.ident.to_string()).collect();
    Some((idents, &last.arguments))
}

/// Whether `ty` is one of `paths` without generic arguments.
fn is_path(ty: &Type, paths: &[&[&str]]) -> bool {
    match path_idents(ty) {
        Some((idents, args)) => args.is_none() && paths.iter().any(|p| idents == *p),
        None => false,
    }
}

/// Whether `ty` is `Vec<u8>`.
fn is_vec_u8(ty: &Type) -> bool {
    let Some((idents, PathArguments::AngleBracketed(args))) = path_idents(ty) else {
        return false;
    };
    VEC_PATHS.iter().any(|p| idents == *p)
        && args.args.len() == 1
        && matches!(&args.args[0], GenericArgument::Type(t) if is_path(strip_groups(t), &[&["u8"]]))
}

/// Rewrites the lifetimes of declared types so they can appear in the
/// generated function's signature: every elided, `'_` or named lifetime
/// becomes a fresh lifetime parameter (the same name maps to the same
/// parameter); `'static` stays.
pub(crate) struct LifetimeParams {
    /// The fresh lifetime parameters, in order of creation.
    pub params: Vec<Lifetime>,
    named: HashMap<String, Lifetime>,
}

impl LifetimeParams {
    /// No lifetimes yet.
    pub(crate) fn new() -> LifetimeParams {
        LifetimeParams {
            params: Vec::new(),
            named: HashMap::new(),
        }
    }

    /// `ty` with its lifetimes made parameters.
    pub(crate) fn generalize(&mut self, ty: &Type) -> Type {
        let mut ty = ty.clone();
        self.visit_type_mut(&mut ty);
        ty
    }

    fn fresh(&mut self) -> Lifetime {
        let lifetime = Lifetime::new(
            &format!("'__usdt_l{}", self.params.len()),
            Span::call_site(),
        );
        self.params.push(lifetime.clone());
        lifetime
    }
}

impl VisitMut for LifetimeParams {
    fn visit_type_reference_mut(&mut self, r: &mut TypeReference) {
        // Inside first, so the fresh lifetime given here is not renamed.
        visit_mut::visit_type_reference_mut(self, r);
        if r.lifetime.is_none() {
            r.lifetime = Some(self.fresh());
        }
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        let name = lifetime.ident.to_string();
        if name == "static" {
            return;
        }
        if name == "_" {
            *lifetime = self.fresh();
            return;
        }
        let replacement = match self.named.get(&name) {
            Some(l) => l.clone(),
            None => {
                let l = self.fresh();
                self.named.insert(name, l.clone());
                l
            }
        };
        *lifetime = replacement;
    }

    // Lifetimes inside `fn(&T)` and `Fn(&T)` are bound there: leave them.
    fn visit_type_fn_ptr_mut(&mut self, _: &mut TypeFnPtr) {}
    fn visit_parenthesized_generic_arguments_mut(&mut self, _: &mut ParenthesizedGenericArguments) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn class(ty: &str, json: bool) -> syn::Result<ParamType> {
        ParamType::classify(&syn::parse_str(ty).unwrap(), json)
    }

    fn text(ty: &Type) -> String {
        ty.to_token_stream().to_string()
    }

    #[test]
    fn classifies_declared_types() {
        for ty in ["&str", "&'static str", "String", "std::string::String"] {
            assert!(matches!(class(ty, false), Ok(ParamType::Str)), "{ty}");
        }
        for ty in ["&[u8]", "Vec<u8>", "alloc::vec::Vec<u8>"] {
            assert!(matches!(class(ty, false), Ok(ParamType::Bytes)), "{ty}");
        }
        for ty in ["&CStr", "&core::ffi::CStr", "CString"] {
            assert!(matches!(class(ty, false), Ok(ParamType::CStr)), "{ty}");
        }
        match class("&Order", false) {
            Ok(ParamType::Borrowed(t)) => assert_eq!(text(&t), "Order"),
            _ => panic!("&Order"),
        }
        match class("&Order", true) {
            Ok(ParamType::Json(t)) => assert_eq!(text(&t), "Order"),
            _ => panic!("#[json] &Order"),
        }
        match class("Vec<u32>", false) {
            Ok(ParamType::Exact(t)) => assert_eq!(text(&t), "Vec < u32 >"),
            _ => panic!("Vec<u32>"),
        }
        assert!(class("&mut u8", false).is_err());
        assert!(class("impl Debug", false).is_err());
    }

    #[test]
    fn counts_note_slots() {
        let slots = |ty| class(ty, false).unwrap().slots();
        assert_eq!(slots("u64"), 1);
        assert_eq!(slots("u128"), 2);
        assert_eq!(slots("&str"), 2);
        assert_eq!(slots("&CStr"), 1);
        assert_eq!(class("Order", true).unwrap().slots(), 2);
    }

    #[test]
    fn lifetimes_become_parameters() {
        let mut lifetimes = LifetimeParams::new();
        let a = lifetimes.generalize(&syn::parse_str("&'a Foo<'_, 'a>").unwrap());
        let b = lifetimes.generalize(&syn::parse_str("&Bar<'static>").unwrap());
        let f = lifetimes.generalize(&syn::parse_str("fn(&u8)").unwrap());
        assert_eq!(text(&a), "& '__usdt_l0 Foo < '__usdt_l1 , '__usdt_l0 >");
        assert_eq!(text(&b), "& '__usdt_l2 Bar < 'static >");
        assert_eq!(text(&f), "fn (& u8)");
        assert_eq!(lifetimes.params.len(), 3);
    }
}

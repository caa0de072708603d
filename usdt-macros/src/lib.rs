//! Procedural macros behind `usdt_runtime`; use them through that crate.
//!
//! The macros validate declarations and generate calls into usdt-runtime,
//! which holds the probe sites' assembly; the binary format (the argument
//! limit, the argument kinds) is usdt-format's.
#![deny(missing_docs)]

mod attr;
mod decl;
mod expand;
mod name;
mod param_type;
mod probe;
mod spans;

use proc_macro::TokenStream;

/// Declares a typed provider: a module whose body-less `fn` items are the
/// provider's probes.
///
/// ```ignore
/// #[usdt_runtime::provider]            // provider name: the module's name
/// mod http {
///     /// A request arrived.
///     pub fn request_start(id: u64, method: &str, path: &str);
///     pub fn request_done(id: u64, status: u16, micros: u64);
/// }
/// http::request_start(|| (id, method, path));
/// if http::request_done::enabled() { /* ... */ }
/// ```
///
/// Options: `name = "..."` sets the provider name; `crate = "..."` the
/// path of usdt-runtime (default `::usdt_runtime`). See the usdt-runtime
/// documentation for what each probe generates.
#[proc_macro_attribute]
pub fn provider(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<attr::ProviderArgs>(args) {
        Ok(args) => args,
        Err(e) => return e.to_compile_error().into(),
    };
    let module = match syn::parse::<syn::ItemMod>(item.clone()) {
        Ok(module) => module,
        Err(_) => {
            let item = proc_macro2::TokenStream::from(item);
            return syn::Error::new_spanned(
                item,
                "#[provider] applies to a module: `mod name { fn probe(arg: Type, ...); }`",
            )
            .to_compile_error()
            .into();
        }
    };
    expand::expand(args, module)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The expansion of usdt-runtime's `probe!` (which passes its own path
/// first): not for direct use.
#[doc(hidden)]
#[proc_macro]
pub fn __probe(input: TokenStream) -> TokenStream {
    syn::parse::<probe::ProbeInput>(input)
        .and_then(probe::expand)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

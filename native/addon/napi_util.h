// Argument and error helpers shared by the addon's wrappers.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "../core/ipv6.h"

namespace flannel {

// An Error "<op>: <strerror>" with `syscall`, `errno` and `code` properties,
// the shape Node's own system errors have.
Napi::Error ErrnoError(Napi::Env env, int err, const char* op);

// The errno's symbolic name, e.g. "EINVAL".
std::string ErrnoName(int err);

// Parses dotted-quad `text` into a host-order address; throws a TypeError
// naming `what` otherwise.
uint32_t ParseIpv4(Napi::Env env, const std::string& text, const char* what);
// The same for an IPv6 address in any text form inet_pton takes.
Ipv6Addr ParseIpv6(Napi::Env env, const std::string& text, const char* what);

// Formats a host-order address as dotted quad.
std::string FormatIpv4(uint32_t addr);
// The text form of an IPv6 address (inet_ntop).
std::string FormatIpv6(const Ipv6Addr& addr);

// Reads object property `key` as an integer in [min, max]. Throws a
// TypeError naming the key when it is missing or out of range.
int64_t IntegerProperty(const Napi::Object& obj, const char* key, int64_t min, int64_t max);

// As IntegerProperty, but `fallback` when the property is undefined.
int64_t OptionalIntegerProperty(const Napi::Object& obj, const char* key, int64_t min, int64_t max,
                                int64_t fallback);

// Reads object property `key` as a string; throws a TypeError naming it otherwise.
std::string StringProperty(const Napi::Object& obj, const char* key);

}  // namespace flannel

#include "napi_util.h"

#include <arpa/inet.h>
#include <string.h>
#include <uv.h>

#include <cmath>

namespace flannel {

Napi::Error ErrnoError(Napi::Env env, int err, const char* op) {
  const std::string name = ErrnoName(err);
  std::string message = std::string(op) + ": " + strerror(err) + " (" + name + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("syscall", Napi::String::New(env, op));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, name));
  return error;
}

std::string ErrnoName(int err) {
  char name[64];
  uv_err_name_r(-err, name, sizeof(name));
  return name;
}

uint32_t ParseIpv4(Napi::Env env, const std::string& text, const char* what) {
  struct in_addr a;
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a dotted-quad IPv4 address, got '" +
                                        text + "'");
  }
  return ntohl(a.s_addr);
}

Ipv6Addr ParseIpv6(Napi::Env env, const std::string& text, const char* what) {
  uint8_t b[16];
  if (inet_pton(AF_INET6, text.c_str(), b) != 1) {
    throw Napi::TypeError::New(env, std::string(what) + " must be an IPv6 address, got '" + text + "'");
  }
  return load_ipv6(b);
}

std::string FormatIpv6(const Ipv6Addr& addr) {
  uint8_t b[16];
  store_ipv6(b, addr);
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, b, buf, sizeof(buf));
  return buf;
}

std::string FormatIpv4(uint32_t addr) {
  char buf[INET_ADDRSTRLEN];
  struct in_addr a;
  a.s_addr = htonl(addr);
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

int64_t OptionalIntegerProperty(const Napi::Object& obj, const char* key, int64_t min, int64_t max,
                                int64_t fallback) {
  if (obj.Get(key).IsUndefined()) return fallback;
  return IntegerProperty(obj, key, min, max);
}

int64_t IntegerProperty(const Napi::Object& obj, const char* key, int64_t min, int64_t max) {
  Napi::Env env = obj.Env();
  Napi::Value v = obj.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (std::floor(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw Napi::TypeError::New(env, std::string(key) + " must be an integer in [" +
                                        std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<int64_t>(d);
}

std::string StringProperty(const Napi::Object& obj, const char* key) {
  Napi::Value v = obj.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace flannel

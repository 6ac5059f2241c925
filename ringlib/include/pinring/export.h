/* What libpinring.so exports. The library is built with -fvisibility=hidden: only declarations
 * marked PINRING_EXPORT (the client API: Client, Queue, Region, RdmaQueue, their free functions
 * and the C API) are in its dynamic symbol table, so everything else can change without an ABI
 * break. debian/libpinring0.symbols lists the exported set; a change shows at build time.
 * C and C++. */
#ifndef PINRING_EXPORT_H_
#define PINRING_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define PINRING_EXPORT __attribute__((visibility("default")))
#else
#define PINRING_EXPORT
#endif

#endif /* PINRING_EXPORT_H_ */

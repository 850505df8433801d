# The batched UDP addon (native/udp.c) and the SCM_RIGHTS socket hand-over (native/fdpass.c): Node-API 8 plus libuv, Linux only.
# Built by `npm install`/`npm ci` through native/build.ts; see native/README.md.
{
  "targets": [
    {
      "target_name": "udp",
      "sources": ["native/udp.c", "native/fdpass.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["asan == 1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ],
  "variables": { "asan%": 0 }
}

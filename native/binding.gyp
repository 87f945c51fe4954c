{
  "targets": [
    {
      "target_name": "vnet_native",
      "sources": [
        "src/addon.c",
        "src/errors.c",
        "src/tap.c",
        "src/unix_dgram.c",
        "src/polled.c",
        "src/bound_methods.c",
        "src/poller.c",
        "src/poller_write.c",
        "src/icmp.c",
        "src/udp.c",
        "src/tcp_sockets.c",
        "src/tcp_splice.c",
        "src/busy_poll.c",
        "src/exec.c"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}

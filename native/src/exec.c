/*
 * execNode(file, args): replaces this process with `file` run with `args`
 * (argv[0] first) and the same environment, by execve(2). It returns only
 * when execve fails, with that errno.
 *
 * Why: some V8 flags only take effect when the isolate is made, and a
 * daemon started as `node bin/vnet daemon` (npm start, a test, a unit file)
 * should not depend on whoever started it to pass them (the daemon's
 * flags: src/cli/node-flags.ts). Node 20 cannot restart itself in place
 * (process.execve came in Node 23.11), and a child process would not do:
 * the pid must stay the one the starter holds (its signals, `ip netns
 * exec`, CPU accounting), with the same standard streams.
 *
 * Safe at start-up: libuv and V8 open their descriptors close-on-exec, and
 * their threads end with the old image. The caller has opened nothing else.
 * The standard streams are the exception: Node marks them close-on-exec once
 * it has wrapped them (process.stderr), and the new image must have them.
 *
 * A profiled node (`--cpu-prof`) gets SIGPROF from V8's sampler thread, and
 * a signal sent while execve runs stays pending into the new image, where
 * its action is the default one again: terminate (with a 100 µs sampling
 * interval, four starts in five died so). Ignoring SIGPROF discards a
 * pending one (POSIX sigaction: "setting a signal action to SIG_IGN for a
 * signal that is pending shall cause the pending signal to be discarded");
 * the new node resets every action at start-up and its profiler installs its
 * own handler.
 */
#include "vnet.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* At most this many arguments and bytes in each, far above what node and the CLI take. */
#define MAX_ARGS 256
#define MAX_ARG_BYTES 4096

static napi_value exec_node(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char file[MAX_ARG_BYTES];
  if (!vnet_arg_string(env, argv[0], "file", file, sizeof file, NULL)) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok || count == 0 || count > MAX_ARGS) {
    vnet_throw(env, "VNET_ERR_INVALID_ARG", "args must be an array of 1 to 256 strings");
    return NULL;
  }
  char *args[MAX_ARGS + 1] = {0};
  int err = 0;
  for (uint32_t i = 0; i < count && err == 0; i++) {
    napi_value item;
    args[i] = malloc(MAX_ARG_BYTES);
    if (args[i] == NULL) {
      err = ENOMEM;
    } else if (napi_get_element(env, argv[1], i, &item) != napi_ok ||
               !vnet_arg_string(env, item, "args[i]", args[i], MAX_ARG_BYTES, NULL)) {
      for (uint32_t j = 0; j <= i; j++) free(args[j]);
      return NULL;
    }
  }
  if (err == 0) {
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
      int flags = fcntl(fd, F_GETFD);
      if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    struct sigaction ignore = {.sa_handler = SIG_IGN}, profiler;
    sigaction(SIGPROF, &ignore, &profiler);
    execve(file, args, environ);
    err = errno;
    sigaction(SIGPROF, &profiler, NULL);
  }
  for (uint32_t i = 0; i < count; i++) free(args[i]);
  napi_value result;
  napi_create_int32(env, err, &result);
  return result;
}

bool vnet_init_exec(napi_env env, napi_value exports) {
  return vnet_export_function(env, exports, "execNode", exec_node);
}

/**
 * Where the switch listens when not told: `$XDG_RUNTIME_DIR` (per-user, mode 0700, cleaned at
 * logout) if set, else the current directory.
 */

function runtimeDir(env: NodeJS.ProcessEnv): string {
  const dir = env.XDG_RUNTIME_DIR;
  return dir && dir.length > 0 ? dir : '.';
}

/** The control socket of `vhost-user-net ctl`: `$XDG_RUNTIME_DIR/vhost-user-net.ctl` or `./vhost-user-net.ctl`. */
export function defaultControlPath(env: NodeJS.ProcessEnv = process.env): string {
  return `${runtimeDir(env)}/vhost-user-net.ctl`;
}

/** The switch's shared vhost-user socket: `$XDG_RUNTIME_DIR/vhost-user-net.sock` or `./vhost-user-net.sock`. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return `${runtimeDir(env)}/vhost-user-net.sock`;
}

/**
 * The control API on its unix socket. Every `desktopd run` serves one: at the path it was given,
 * else at the per-user default, else — when another live daemon holds the default — at a path of
 * its own beside it (`control-NAME.sock`), which `desktopd ls` lists.
 */
import { basename, dirname, join } from "node:path";
import type { Logger } from "@desktopd/stack";
import { type ControlTarget, controlSocketAnswers, startControlServer } from "../control/server.js";
import { ControlError } from "../errors.js";
import type { Service } from "./service.js";

export interface ControlService extends Service {
  readonly path: string;
}

/**
 * Where this daemon's control API goes: `explicit` as given (in use: an error at start), else
 * `fallbackDefault` unless a live daemon answers there, else `control-INSTANCE.sock` beside it.
 */
export async function chooseControlPath(
  explicit: string | undefined,
  fallbackDefault: string | undefined,
  instance: string,
): Promise<string | undefined> {
  if (explicit !== undefined || fallbackDefault === undefined) return explicit;
  if (!(await controlSocketAnswers(fallbackDefault))) return fallbackDefault;
  const dir = dirname(fallbackDefault);
  const stem = basename(fallbackDefault).replace(/\.sock$/, "");
  for (const name of [instance, `${instance}-${process.pid}`]) {
    const path = join(dir, `${stem}-${name}.sock`);
    if (!(await controlSocketAnswers(path))) return path;
  }
  return join(dir, `${stem}-${process.pid}.sock`);
}

export interface ControlPlace {
  /** --control or DESKTOPD_CONTROL: served there or not at all. */
  explicit?: string | undefined;
  /** The per-user default, shared by whichever daemon gets there first. */
  fallbackDefault?: string | undefined;
  /** Names this daemon's own path when the default is taken: its namespace, else its pid. */
  instance: string;
}

export async function startControl(
  place: ControlPlace,
  target: ControlTarget,
  logger?: Logger,
): Promise<ControlService | undefined> {
  // Two daemons starting at once may both find the default free: the loser picks again.
  for (let attempt = 0; ; attempt++) {
    const path = await chooseControlPath(place.explicit, place.fallbackDefault, place.instance);
    if (path === undefined) return undefined;
    try {
      const server = await startControlServer(path, target);
      if (path !== place.explicit && path !== place.fallbackDefault)
        logger?.info(
          { control: path, default: place.fallbackDefault },
          "another desktopd serves the default control socket: serving beside it",
        );
      else logger?.info({ control: path }, "control API serving");
      return {
        name: "control",
        path: server.path,
        close: () => server.close(),
      };
    } catch (error) {
      if (place.explicit !== undefined || attempt >= 2 || !ControlError.isInstance(error)) throw error;
    }
  }
}

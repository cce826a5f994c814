/**
 * The LP backends a process plans with: the JavaScript solver always, HiGHS (WebAssembly) loaded once
 * per process for models past the JavaScript solver's reach.
 */
import { createJsLpBackend, loadHighsBackend, type LpBackends } from './lp/index.ts';

let cached: Promise<LpBackends> | undefined;

/** Both backends, HiGHS loaded once and shared by every later call. */
export function defaultBackends(): Promise<LpBackends> {
  cached ??= loadHighsBackend().then((highs) => ({ js: createJsLpBackend(), highs }));
  return cached;
}

/**
 * The argument templates of a container or command task's program, expanded the same way where the
 * program runs as a process (runtime/command-run.ts) and where a pod runs it (agents/kube-executor.ts):
 * `{{inputs.x}}` is input field `x` (a string as is, anything else as JSON), `{{inputs}}` and
 * `{{outputs}}` the two directories, `{{outputs.x}}` the file output `x` is read from.
 */

/** The directories a program reads its inputs from and writes its outputs to. */
export interface ProgramDirs {
  inputs: string;
  outputs: string;
}

const TEMPLATE = /\{\{\s*(inputs|outputs)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}/g;

/**
 * One argument with its templates expanded.
 *
 * @example
 * expandProgramArg('--epochs={{inputs.epochs}}', { epochs: 3 }, { inputs: '/in', outputs: '/out' }); // '--epochs=3'
 */
export function expandProgramArg(arg: string, input: unknown, dirs: ProgramDirs): string {
  return arg.replace(TEMPLATE, (_m, side: string, field: string | undefined) => {
    if (side === 'outputs') return field ? `${dirs.outputs}/${field}` : dirs.outputs;
    if (!field) return dirs.inputs;
    const v = (input as Record<string, unknown> | undefined)?.[field];
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}

/** Whether an argument names an input field's value (which must then be known where it is expanded). */
export function usesInputValue(arg: string): boolean {
  return [...arg.matchAll(TEMPLATE)].some((m) => m[1] === 'inputs' && m[2] !== undefined);
}

/**
 * Where a container task's pod on Kubernetes keeps its inputs and outputs: one `emptyDir` volume at
 * `/gantry`, shared by the init container that writes the inputs, the task's own container and the
 * sidecar that reads the outputs back.
 */
export const POD_PROGRAM_DIRS: ProgramDirs = { inputs: '/gantry/inputs', outputs: '/gantry/outputs' };

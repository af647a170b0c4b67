/**
 * Test helpers, one module per concern:
 * - `h1.ts`: start an app (`listen`), raw TCP (`rawRequest`, `openRaw`,
 *   `statuses`, `bodies`), GET without decoding (`rawGet`, `rawGetTimed`);
 * - `h2.ts`: `h2Connect`, `h2Request`, raw HTTP/2 frames (`H2_PREFACE`,
 *   `h2frame`);
 * - `h3.ts`: the independent aioquic HTTP/3 client (`h3`);
 * - `memory.ts`: `memory()` after full GCs (imported on its own: it turns on
 *   `--expose-gc`, so it is not re-exported here);
 * - `proc.ts`: fixture processes, `freePort`, `waitFor`;
 * - `tools.ts`: external tools (`requireTool`);
 * - `wait.ts`: `sleep`, `until` (throws on timeout);
 * - `ws.ts`: `echoWebSocket` (an echo route).
 */
export * from './h1.js'
export * from './h2.js'
export * from './h3.js'
export * from './proc.js'
export * from './tools.js'
export * from './wait.js'
export * from './ws.js'

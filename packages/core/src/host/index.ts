export { createHost } from './create-host.js';
export { Host } from './host.js';
export type { HostOptions } from './host-options.js';
export type { VfioSimPlugin } from './plugin.js';
export { validatePlugins } from './validate-plugins.js';

import { fail } from '../errors/index.js';
import type { VfioSimPlugin } from './plugin.js';

/**
 * Checks plugin metadata before anything is registered: unique names, and
 * every dependency present earlier in the list (register/apply run in list
 * order, so a dependency must already have run).
 */
export function validatePlugins(plugins: readonly VfioSimPlugin[]): void {
  const seen = new Set<string>();
  const all = new Set(plugins.map((plugin) => plugin.name));
  for (const plugin of plugins) {
    if (seen.has(plugin.name)) fail('PLUGIN_DUPLICATE', `plugin "${plugin.name}" is listed twice`);
    for (const dependency of plugin.dependsOn ?? []) {
      if (!all.has(dependency)) {
        fail('PLUGIN_DEPENDENCY_MISSING', `plugin "${plugin.name}" depends on "${dependency}", which is not in the plugin list`);
      }
      if (!seen.has(dependency)) {
        fail('PLUGIN_DEPENDENCY_MISSING', `plugin "${plugin.name}" depends on "${dependency}", which must be listed before it`);
      }
    }
    seen.add(plugin.name);
  }
}

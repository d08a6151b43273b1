import { z } from 'zod';
import { fail } from '../errors/index.js';
import type { VfioSimPlugin } from './plugin.js';

/** What a plugin object must look like; a plugin written in plain JavaScript gets no help from the types. */
const pluginSchema = z.object({
  name: z.string().min(1, 'needs a name'),
  dependsOn: z.array(z.string().min(1, 'dependency names cannot be empty')).optional(),
  register: z.function().optional(),
  apply: z.function().optional(),
});

/**
 * Checks plugin metadata before anything is registered: each plugin is an
 * object with a non-empty name, a list of dependency names and functions
 * for its steps; names are unique; every dependency is present earlier in
 * the list (register/apply run in list order, so a dependency must already
 * have run), and no plugin depends on itself.
 */
export function validatePlugins(plugins: readonly VfioSimPlugin[]): void {
  plugins.forEach((plugin, index) => {
    const parsed = pluginSchema.safeParse(plugin);
    if (!parsed.success) {
      const label = typeof plugin?.name === 'string' && plugin.name ? `"${plugin.name}"` : `#${index}`;
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'plugin'}: ${issue.message}`);
      fail('PLUGIN_INVALID', `plugin ${label} is malformed: ${problems.join('; ')}`);
    }
  });
  const seen = new Set<string>();
  const all = new Set(plugins.map((plugin) => plugin.name));
  for (const plugin of plugins) {
    if (seen.has(plugin.name)) fail('PLUGIN_DUPLICATE', `plugin "${plugin.name}" is listed twice`);
    for (const dependency of plugin.dependsOn ?? []) {
      if (dependency === plugin.name) fail('PLUGIN_INVALID', `plugin "${plugin.name}" depends on itself`);
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

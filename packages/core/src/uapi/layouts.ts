import * as iommufdStructs from './iommufd-structs.js';
import * as vfioStructs from './vfio-structs.js';

/** Every uAPI struct codec by kernel struct name. */
export const uapiStructs = Object.freeze({ ...vfioStructs, ...iommufdStructs });

export interface UapiLayout {
  readonly size: number;
  readonly fields: readonly { readonly name: string; readonly offset: number; readonly size: number }[];
}

/**
 * sizeof and offsetof for every uAPI struct, read off the codecs, for tools
 * and for comparing with a C compiler's answer. Flexible array members have
 * size 0.
 */
export function uapiLayouts(): Record<string, UapiLayout> {
  const out: Record<string, UapiLayout> = {};
  for (const codec of Object.values(uapiStructs)) {
    out[codec.name] = {
      size: codec.size,
      fields: codec.fields.map(({ name, offset, size }) => ({ name, offset, size })),
    };
  }
  return out;
}

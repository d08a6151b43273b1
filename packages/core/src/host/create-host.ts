import 'reflect-metadata';
import { container as rootContainer, instanceCachingFactory, Lifecycle } from 'tsyringe';
import { SimError } from '../errors/index.js';
import { DmaEngine } from '../iommu/dma-engine.js';
import { IommuCore } from '../iommu/iommu-core.js';
import { Iommufd } from '../iommu/iommufd/index.js';
import { type1IommuDriver } from '../iommu/type1/index.js';
import { System } from '../os/index.js';
import { buildPlatform, type HostDescription, type PciFunction } from '../platform/index.js';
import {
  DMA_ENGINE,
  DRIVER_CORE,
  HOST_OPTIONS,
  IOMMU_CORE,
  IOMMUFD,
  IOMMUFD_KAPI,
  PLATFORM,
  SYSTEM,
  VFIO_CORE,
} from '../tokens.js';
import { DriverCore } from '../vfio/driver-core.js';
import { VfioCore } from '../vfio/vfio-core.js';
import { Host } from './host.js';
import type { HostOptions } from './host-options.js';
import { validatePlugins } from './validate-plugins.js';

const defaults: HostOptions = Object.freeze({
  plugins: [],
  seed: 1,
  noiommu: false,
  detectStaleTranslations: false,
});

/**
 * Builds a machine from a description and a list of plugins:
 *
 * 1. the description is validated and the PCI hardware built (firmware);
 * 2. core services are registered in a child container of their own, then
 *    each plugin's `register` adds its providers;
 * 3. the host is resolved and each plugin's `apply` runs (drivers and IOMMU
 *    drivers register, hooks are tapped);
 * 4. boot: every function is probed by the IOMMU drivers, then added to the
 *    driver core, where `driver` in the description acts as driver_override.
 *
 * `createHost()` with no argument is an empty machine that still has
 * /dev/iommu and /dev/vfio/vfio.
 */
export function createHost(description: HostDescription = {}, options: Partial<HostOptions> = {}): Host {
  const resolved: HostOptions = { ...defaults, ...options };
  validatePlugins(resolved.plugins);
  const platform = buildPlatform(description);
  const system = new System();

  const container = rootContainer.createChildContainer();
  container.register(HOST_OPTIONS, { useValue: resolved });
  container.register(SYSTEM, { useValue: system });
  container.register(PLATFORM, { useValue: platform });
  container.register(IOMMU_CORE, { useClass: IommuCore }, { lifecycle: Lifecycle.ContainerScoped });
  container.register(DMA_ENGINE, {
    useFactory: instanceCachingFactory(
      (c) => new DmaEngine(c.resolve(IOMMU_CORE), system.physMem, {
        detectStaleTranslations: resolved.detectStaleTranslations,
        now: () => system.clock.now,
      }),
    ),
  });
  container.register(IOMMUFD, { useClass: Iommufd }, { lifecycle: Lifecycle.ContainerScoped });
  container.register(IOMMUFD_KAPI, { useToken: IOMMUFD });
  container.register(DRIVER_CORE, { useClass: DriverCore }, { lifecycle: Lifecycle.ContainerScoped });
  container.register(VFIO_CORE, { useClass: VfioCore }, { lifecycle: Lifecycle.ContainerScoped });
  for (const plugin of resolved.plugins) runPluginStep(plugin.name, 'register', () => plugin.register?.(container));

  const host = container.resolve(Host);
  host.vfio.registerIommuDriver(type1IommuDriver(host.iommu));
  for (const plugin of resolved.plugins) runPluginStep(plugin.name, 'apply', () => plugin.apply?.(host));
  boot(host, description);
  return host;
}

function runPluginStep(plugin: string, step: string, body: () => void): void {
  try {
    body();
  } catch (error) {
    if (error instanceof SimError) throw error;
    throw new SimError('HOOK_TAP_FAILED', `plugin "${plugin}" failed in ${step}: ${String(error)}`, { cause: error });
  }
}

/**
 * What the kernel does at boot for each function, in bdf order: the IOMMU
 * driver whose hardware sits above it probes it into its group (a function
 * no driver claims has no IOMMU), then the PCI core adds it to the driver
 * core, which binds the matching driver.
 */
function boot(host: Host, description: HostDescription): void {
  const overrides = driverOverrides(description);
  for (const fn of host.platform.functions()) {
    probeIommu(host, fn);
    const override = overrides.get(fn.name);
    host.drivers.addPciDevice(fn, override ?? null);
  }
}

function probeIommu(host: Host, fn: PciFunction): void {
  const group = host.platform.groups.groupOf(fn);
  if (!group || host.iommu.drivers.length === 0) return;
  host.iommu.probeDevice(fn, group.id);
}

function driverOverrides(description: HostDescription): Map<string, string> {
  const overrides = new Map<string, string>();
  for (const device of description.devices ?? []) {
    if (device.driver) overrides.set(device.bdf, device.driver);
  }
  return overrides;
}

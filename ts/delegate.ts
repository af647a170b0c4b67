/**
 * The lazy standard objects (`WebRequest`, `LightResponse`) answer a few
 * properties themselves and hand every other one to the platform object
 * they create on first need. `delegateRest` defines those other properties
 * on the lazy class's prototype and puts the platform's prototype behind
 * it, so `instanceof` holds and nothing of the standard API is missing.
 */
export function delegateRest<T extends object>(
  lazy: { prototype: T },
  platform: { prototype: object },
  realOf: (self: T) => object,
): void {
  const own = new Set(Object.getOwnPropertyNames(lazy.prototype))
  for (const name of Object.getOwnPropertyNames(platform.prototype)) {
    if (own.has(name) || name === 'constructor') continue
    const d = Object.getOwnPropertyDescriptor(platform.prototype, name)
    if (!d) continue
    if (d.get) {
      const get = d.get
      Object.defineProperty(lazy.prototype, name, {
        configurable: true,
        enumerable: d.enumerable ?? false,
        get(this: T) {
          return get.call(realOf(this))
        },
      })
    } else if (typeof d.value === 'function') {
      const fn = d.value as (...args: unknown[]) => unknown
      Object.defineProperty(lazy.prototype, name, {
        configurable: true,
        writable: true,
        enumerable: d.enumerable ?? false,
        value(this: T, ...args: unknown[]) {
          return fn.apply(realOf(this), args)
        },
      })
    }
  }
  Object.setPrototypeOf(lazy.prototype, platform.prototype)
}

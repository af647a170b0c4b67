import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { App, Response, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'

describe('smoke', () => {
  let server: Server
  beforeAll(async () => {
    const app = new App()
    app.get('/plaintext', () => Response.text('Hello, World!'))
    app.get('/users/{id}', (req) => Response.json({ id: req.pathParams.id }))
    server = await listen(app)
  })
  afterAll(() => server.close())

  it('answers a JS route over HTTP/1.1', async () => {
    const r = await fetch(`${server.url}/plaintext`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await r.text()).toBe('Hello, World!')
  })

  it('passes path parameters', async () => {
    const r = await fetch(`${server.url}/users/42`)
    expect(await r.json()).toEqual({ id: '42' })
  })
})

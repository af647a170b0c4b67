/**
 * Text messages through the event batch's short-text paths: short ASCII
 * texts are cut from one latin1 string per window of the batch and written
 * back by a loop, everything else goes through UTF-8 decoding and
 * `Buffer#write`. The client (`ws`) sends each set in one burst, so the
 * messages share batches; the handler keeps what it received and echoes it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { App, type Server } from '../ts/index.js'
import { listen } from './helpers/index.js'
import { until } from './helpers/wait.js'

const servers: Server[] = []
const clients: WebSocket[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate()
  await Promise.all(servers.splice(0).map((s) => s.close({ timeout: 1 })))
})

async function echo(sent: string[]): Promise<{ received: string[]; echoed: string[] }> {
  const received: string[] = []
  const app = new App()
  app.websocket('/t', (ws) =>
    ws.onMessage((m) => {
      if (m.type !== 'text') return
      received.push(m.data)
      void ws.sendText(m.data)
    }),
  )
  const server = await listen(app)
  servers.push(server)
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t`)
  clients.push(ws)
  const echoed: string[] = []
  ws.on('message', (d, binary) => void (binary ? echoed.push('(binary)') : echoed.push(d.toString())))
  await new Promise((r, j) => ws.once('open', r).once('error', j))
  for (const s of sent) ws.send(s)
  await until(() => echoed.length >= sent.length, 5000)
  return { received, echoed }
}

describe('websocket: short and non-ASCII texts', () => {
  it('receives and echoes every length around the short-text limit, ASCII or not, in one burst', async () => {
    const sent = [
      '', 'a', 'x'.repeat(12), 'y'.repeat(13), 'z'.repeat(63), 'q'.repeat(64), 'r'.repeat(65), 's'.repeat(300),
      'é', 'héllo', '日本語', '😀', 'a'.repeat(63) + 'é', 'é' + 'a'.repeat(63), 'a'.repeat(64) + '😀',
      '\u007f', '\u0080', 'tab\tand\nnewline',
    ]
    const { received, echoed } = await echo(sent)
    expect(received).toEqual(sent)
    expect(echoed).toEqual(sent)
  })

  it('hands each connection its own messages when the connections\' runs alternate in a batch', async () => {
    const got = new Map<string, string[]>()
    const app = new App()
    app.websocket('/t', (ws) =>
      ws.onMessage((m) => {
        if (m.type !== 'text') return
        const who = m.data.slice(0, 1)
        if (!got.has(who)) got.set(who, [])
        ;(got.get(who) as string[]).push(m.data)
        void ws.sendText(m.data)
      }),
    )
    const server = await listen(app)
    servers.push(server)
    const names = ['a', 'b', 'c', 'd']
    const socks = await Promise.all(
      names.map(async (n) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/t`)
        clients.push(ws)
        const echoed: string[] = []
        ws.on('message', (d) => void echoed.push(d.toString()))
        await new Promise((r, j) => ws.once('open', r).once('error', j))
        return { n, ws, echoed }
      }),
    )
    // Interleaved bursts: every batch holds runs of several connections.
    for (let i = 0; i < 200; i++) for (const s of socks) s.ws.send(`${s.n}${i}`)
    await until(() => socks.every((s) => s.echoed.length === 200), 5000)
    for (const s of socks) {
      const want = Array.from({ length: 200 }, (_, i) => `${s.n}${i}`)
      expect(s.echoed).toEqual(want)
      expect(got.get(s.n)).toEqual(want)
    }
  })

  it('keeps texts intact across the batch windows of a long burst', async () => {
    // 600 × 40-byte texts (with a few non-ASCII ones between) make batches
    // longer than one 8 KB window.
    const sent = Array.from({ length: 600 }, (_, i) => (i % 97 === 5 ? `ü-${i}-`.padEnd(39, 'ß') : `m${i}-`.padEnd(40, 'abcdefgh')))
    const { received, echoed } = await echo(sent)
    expect(received).toEqual(sent)
    expect(echoed).toEqual(sent)
  })
})

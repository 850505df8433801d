/**
 * CoreDNS's template README, example by example, against node-local-dns: each row runs the
 * README's Corefile in the real agent, with `forward . 8.8.8.8` replaced by a local Knot (never
 * off-box) that serves example.com, example and google.com, and asks dig what the README says
 * the answer is. The README section of each row is named in it. The one example that needs
 * `var`/`expr` (expr-lang) asserts the clear error node-local-dns gives instead.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, runToExit, startAgent, startKnot, type Authority, type DigResult } from '../engine/harness.ts';
import { freeAddress } from '../lib/net.ts';

let knot: Authority;

const zone = (origin: string, body: string) => `$ORIGIN ${origin}.
$TTL 300
@ IN SOA ns.${origin}. hostmaster.${origin}. 1 7200 1800 86400 60
@ IN NS ns
ns IN A 192.0.2.1
${body}
`;

before(async () => {
  knot = await startKnot({
    'example.com': zone('example.com', 'www IN A 192.0.2.30'),
    example: zone('example', 'www IN A 192.0.2.40'),
    'google.com': zone('google.com', '@ IN A 192.0.2.50'),
  });
});
after(async () => {
  await knot?.stop();
});

type Q = (...args: string[]) => Promise<DigResult>;

interface Row {
  section: string;
  /** The README's Corefile; UPSTREAM stands for its 8.8.8.8. */
  corefile: string;
  checks: (q: Q) => Promise<void>;
}

/** `name ttl class type data` of a section, as dig prints them. */
const rrs = (list: DigResult['answer']) => list.map((r) => `${r.name} ${r.ttl} ${r.class} ${r.type} ${r.data}`);

const ROWS: Row[] = [
  {
    section: 'Examples: "Resolve everything to NXDOMAIN"',
    corefile: `. {
    template ANY ANY {
      rcode NXDOMAIN
    }
}`,
    checks: async (q) => {
      // Default zone `.`, no fallthrough: every query, any class and type, is NXDOMAIN.
      for (const args of [
        ['www.example.com', 'A'],
        ['example.org', 'MX'],
        ['-c', 'CH', 'version.bind', 'TXT'],
      ]) {
        const r = await q(...args);
        assert.equal(r.status, 'NXDOMAIN', args.join(' '));
        assert.deepEqual([r.answer.length, r.authority.length], [0, 0]);
        assert.ok(r.flags.includes('aa'));
      }
    },
  },
  {
    section: 'Examples: "Resolve .invalid as NXDOMAIN"',
    corefile: `. {
    forward . UPSTREAM

    template ANY ANY invalid {
      rcode NXDOMAIN
      authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
      ederror 21 "Blocked according to RFC2606"
    }
}`,
    checks: async (q) => {
      // 1. NXDOMAIN; 2. a dummy SOA with TTL 60; the extended error 21 (RFC 8914's "Not
      // Supported") with the README's text, in an OPT with DO set as CoreDNS's SetEdns0(4096, true).
      const r = await q('something.invalid', 'A');
      assert.equal(r.status, 'NXDOMAIN');
      assert.deepEqual(rrs(r.authority), ['invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60']);
      assert.match(r.raw, /; EDE: 21 \(Not Supported\): \(Blocked according to RFC2606\)/);
      assert.deepEqual(r.edns, { version: 0, flags: ['do'], udp: 1232 }, "the client's UDP size (CoreDNS's SizeAndDo), DO from SetEdns0");
      // 3. The CH class gets NXDOMAIN/SOA too (the SOA in the query's class).
      const ch = await q('-c', 'CH', 'something.invalid', 'TXT');
      assert.equal(ch.status, 'NXDOMAIN');
      assert.deepEqual(rrs(ch.authority), ['invalid. 60 CH SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60']);
      // Other names still go to the upstream.
      assert.deepEqual(rrs((await q('www.example.com', 'A')).answer), ['www.example.com. 300 IN A 192.0.2.30']);
    },
  },
  {
    section: 'Examples: "Block invalid search domain completions" (zone-based)',
    corefile: `. {
    forward . UPSTREAM

    template IN ANY example.com.dc1.example.com {
      rcode NXDOMAIN
      authority "{{ .Zone }} 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)"
    }
}`,
    checks: async (q) => {
      const r = await q('something.example.com.dc1.example.com', 'A');
      assert.equal(r.status, 'NXDOMAIN');
      assert.deepEqual(rrs(r.authority), ['example.com.dc1.example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 1 60 60 60 60']);
      assert.deepEqual(rrs((await q('www.example.com', 'A')).answer), ['www.example.com. 300 IN A 192.0.2.30']);
    },
  },
  {
    section: 'Examples: "Block invalid search domain completions" (the regex-based equivalent)',
    corefile: `. {
    forward . UPSTREAM

    template IN ANY example.com {
      match "example\\.com\\.(dc1\\.example\\.com\\.)$"
      rcode NXDOMAIN
      authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.{{ index .Match 1 }} (1 60 60 60 60)"
      fallthrough
    }
}`,
    checks: async (q) => {
      const r = await q('something.example.com.dc1.example.com', 'AAAA');
      assert.equal(r.status, 'NXDOMAIN');
      assert.deepEqual(rrs(r.authority), ['dc1.example.com. 60 IN SOA ns.dc1.example.com. hostmaster.dc1.example.com. 1 60 60 60 60']);
      // fallthrough: the rest of example.com is the upstream's.
      assert.deepEqual(rrs((await q('www.example.com', 'A')).answer), ['www.example.com. 300 IN A 192.0.2.30']);
    },
  },
  {
    section: 'Examples: "Resolve A/PTR for .example"',
    corefile: `. {
    forward . UPSTREAM

    # ip-a-b-c-d.example A a.b.c.d

    template IN A example {
      match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }

    # d.c.b.a.in-addr.arpa PTR ip-a-b-c-d.example

    template IN PTR in-addr.arpa {
      match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
      answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }
}`,
    checks: async (q) => {
      assert.deepEqual(rrs((await q('ip-10-64-1-7.example', 'A')).answer), ['ip-10-64-1-7.example. 60 IN A 10.64.1.7']);
      // "the A record is actually a wildcard: any subdomain of the IP address will resolve to the IP address"
      assert.deepEqual(rrs((await q('www.ip-10-64-1-7.example', 'A')).answer), ['www.ip-10-64-1-7.example. 60 IN A 10.64.1.7']);
      assert.deepEqual(rrs((await q('-x', '10.64.1.7')).answer), ['7.1.64.10.in-addr.arpa. 60 IN PTR ip-10-64-1-7.example.']);
      // "Fallthrough is needed for mixed domains where only some responses are templated."
      assert.deepEqual(rrs((await q('www.example', 'A')).answer), ['www.example. 300 IN A 192.0.2.40']);
    },
  },
  {
    section: 'Examples: "Resolve device addresses for HTTPS on LAN" (var/expr: not supported)',
    corefile: `. {
    forward . UPSTREAM

    template IN A example.com {
      match ^(?P<ip>[0-9]{1,3}(-[0-9]{1,3}){3})[.](?P<id>[a-z2-7]{26})[.]example[.]com[.]$
      var ip replace(group('ip'), '-', '.')
      expr "any(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'], incidr(ip, #))"
      answer "{{ .Name }} 60 IN A {{ .Var.ip }}"
      fallthrough
    }
}`,
    checks: async () => {
      throw new Error('not reached: this Corefile must not load');
    },
  },
  {
    section: 'Examples: "Resolve hexadecimal ip pattern using parseInt"',
    corefile: `. {
    forward . UPSTREAM

    template IN A example {
      match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
      answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"
      fallthrough
    }
}`,
    checks: async (q) => {
      assert.deepEqual(rrs((await q('ip0a7b7b7b.example', 'A')).answer), ['ip0a7b7b7b.example. 60 IN A 10.123.123.123']);
      assert.deepEqual(rrs((await q('ip0a01ff10.example', 'A')).answer), ['ip0a01ff10.example. 60 IN A 10.1.255.16']);
      assert.deepEqual(rrs((await q('www.example', 'A')).answer), ['www.example. 300 IN A 192.0.2.40']);
    },
  },
  {
    section: 'Examples: "Resolve multiple ip patterns"',
    corefile: `. {
    forward . UPSTREAM

    template IN A example {
      match "^ip-(?P<a>10)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]dc[.]example[.]$"
      match "^(?P<a>[0-9]*)[.](?P<b>[0-9]*)[.](?P<c>[0-9]*)[.](?P<d>[0-9]*)[.]ext[.]example[.]$"
      answer "{{ .Name }} 60 IN A {{ .Group.a}}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
}`,
    checks: async (q) => {
      assert.deepEqual(rrs((await q('ip-10-1-2-3.dc.example', 'A')).answer), ['ip-10-1-2-3.dc.example. 60 IN A 10.1.2.3']);
      assert.deepEqual(rrs((await q('192.168.4.5.ext.example', 'A')).answer), ['192.168.4.5.ext.example. 60 IN A 192.168.4.5']);
      // ip-11-... matches neither pattern: it falls through to the upstream, which has no such name.
      assert.equal((await q('ip-11-1-2-3.dc.example', 'A')).status, 'NXDOMAIN');
    },
  },
  {
    section: 'Examples: "Resolve A and MX records for IP templates in .example"',
    corefile: `. {
    forward . UPSTREAM

    template IN A example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
    template IN MX example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
      additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
}`,
    checks: async (q) => {
      assert.deepEqual(rrs((await q('ip-10-1-2-3.example', 'A')).answer), ['ip-10-1-2-3.example. 60 IN A 10.1.2.3']);
      const mx = await q('ip-10-1-2-3.example', 'MX');
      assert.deepEqual(rrs(mx.answer), ['ip-10-1-2-3.example. 60 IN MX 10 ip-10-1-2-3.example.']);
      assert.deepEqual(rrs(mx.additional), ['ip-10-1-2-3.example. 60 IN A 10.1.2.3']);
    },
  },
  {
    section: 'Examples: "Adding authoritative nameservers to the response"',
    corefile: `. {
    forward . UPSTREAM

    template IN A example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      authority  "example. 60 IN NS ns0.example."
      authority  "example. 60 IN NS ns1.example."
      additional "ns0.example. 60 IN A 203.0.113.8"
      additional "ns1.example. 60 IN A 198.51.100.8"
      fallthrough
    }
    template IN MX example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
      additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      authority  "example. 60 IN NS ns0.example."
      authority  "example. 60 IN NS ns1.example."
      additional "ns0.example. 60 IN A 203.0.113.8"
      additional "ns1.example. 60 IN A 198.51.100.8"
      fallthrough
    }
}`,
    checks: async (q) => {
      const a = await q('ip-10-9-8-7.example', 'A');
      assert.deepEqual(rrs(a.answer), ['ip-10-9-8-7.example. 60 IN A 10.9.8.7']);
      assert.deepEqual(rrs(a.authority), ['example. 60 IN NS ns0.example.', 'example. 60 IN NS ns1.example.']);
      assert.deepEqual(rrs(a.additional), ['ns0.example. 60 IN A 203.0.113.8', 'ns1.example. 60 IN A 198.51.100.8']);
      const mx = await q('ip-10-9-8-7.example', 'MX');
      assert.deepEqual(rrs(mx.answer), ['ip-10-9-8-7.example. 60 IN MX 10 ip-10-9-8-7.example.']);
      assert.deepEqual(rrs(mx.authority), ['example. 60 IN NS ns0.example.', 'example. 60 IN NS ns1.example.']);
      assert.deepEqual(rrs(mx.additional), ['ip-10-9-8-7.example. 60 IN A 10.9.8.7', 'ns0.example. 60 IN A 203.0.113.8', 'ns1.example. 60 IN A 198.51.100.8']);
    },
  },
  {
    section: 'Examples: "Fabricate a CNAME"',
    corefile: `. {
  template IN ANY foogle.com {
    match "^foogle\\.com\\.$"
    answer "foogle.com 60 IN CNAME google.com"
  }
  forward . UPSTREAM
}`,
    checks: async (q) => {
      // "The answer will also contain a record for google.com if the upstream nameserver can return a record for it of the requested type."
      const a = await q('foogle.com', 'A');
      assert.equal(a.status, 'NOERROR');
      assert.deepEqual(rrs(a.answer), ['foogle.com. 60 IN CNAME google.com.', 'google.com. 300 IN A 192.0.2.50']);
      // Upstream has no AAAA for google.com: the CNAME alone.
      assert.deepEqual(rrs((await q('foogle.com', 'AAAA')).answer), ['foogle.com. 60 IN CNAME google.com.']);
      // "for any DNS query made exactly for foogle.com": a subdomain matches the zone, not the regex, and there is no fallthrough.
      assert.equal((await q('www.foogle.com', 'A')).status, 'SERVFAIL');
    },
  },
];

for (const row of ROWS) {
  test(row.section, async () => {
    const { host, port } = await freeAddress();
    const text = row.corefile.replace(/^\. \{/, `.:${port} {\n    bind ${host}`).replaceAll('UPSTREAM', knot.addr);
    if (row.section.includes('not supported')) {
      const dir = mkdtempSync(path.join(tmpdir(), 'nld-tpl-compat-'));
      try {
        const file = path.join(dir, 'Corefile');
        writeFileSync(file, text);
        const r = await runToExit(['-conf', file]);
        assert.equal(r.code, 1, `exit status; output:\n${r.stdout}${r.stderr}`);
        assert.match(
          r.stdout + r.stderr,
          /Corefile:7 - Error during parsing: 'var' is not supported by node-local-dns \(CoreDNS evaluates it with the expr-lang language\)/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return;
    }
    const agent = await startAgent(text);
    try {
      await row.checks((...args) => dig(host, port, args));
    } finally {
      const code = await agent.stop();
      assert.equal(code, 0, `agent exit status; output:\n${agent.output()}`);
    }
  });
}

#!/usr/bin/env python3
"""gen.py: writes labeled.tsv (dev) and heldout.tsv for tests/unit/pii_eval.

Columns: label (pos|neg), entity, text, value. For pos lines, value is the
exact substring the detector must report as that entity; neg lines must
produce no match at all (entity names what the hard negative imitates).
Every value is synthetic or a published test/documentation value; see
README.md. Run: python3 gen.py  (deterministic: fixed seeds)."""
import random, string, sys, os

HERE = os.path.dirname(os.path.abspath(__file__))

def luhn_complete(prefix, length, r):
    body = prefix + ''.join(r.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        s = body + d
        tot = 0
        for i, ch in enumerate(reversed(s)):
            v = int(ch)
            if i % 2:
                v *= 2
                if v > 9: v -= 9
            tot += v
        if tot % 10 == 0:
            return s
    raise AssertionError

def luhn_break(num):
    last = int(num[-1])
    return num[:-1] + str((last + 1) % 10)

def iban_check(cc, bban):
    s = bban + cc + '00'
    n = int(''.join(str(int(c, 36)) for c in s))
    return '%02d' % (98 - n % 97)

def group4(s):
    return ' '.join(s[i:i + 4] for i in range(0, len(s), 4))

def fmt_card(num, r):
    style = r.choice(['plain', 'space', 'dash'])
    if style == 'plain':
        return num
    sep = ' ' if style == 'space' else '-'
    if len(num) == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i:i + 4] for i in range(0, len(num), 4))

PUBLISHED_CARDS = ['4242424242424242', '4111111111111111', '5555555555554444',
    '378282246310005', '371449635398431', '6011111111111117', '6011000990139424',
    '3056930009020004', '36227206271667', '3566002020360505', '6200000000000005',
    '5200828282828210', '2223003122003222', '4000056655665556', '4012888888881881',
    '5105105105105100', '4000000000000002', '4000002500003155']
CARD_PREFIXES = [('4', 16), ('4', 13), ('51', 16), ('53', 16), ('55', 16), ('2221', 16),
    ('2720', 16), ('34', 15), ('37', 15), ('6011', 16), ('65', 16), ('3528', 16),
    ('36', 14), ('62', 16), ('4', 19)]
PUBLISHED_IBANS = ['GB82WEST12345698765432', 'DE89370400440532013000',
    'FR1420041010050500013M02606', 'NL91ABNA0417164300', 'ES9121000418450200051332',
    'IT60X0542811101000000123456', 'CH9300762011623852957', 'BE68539007547034',
    'AT611904300234573201', 'SE4550000000058398257466', 'PL61109010140000071219812874',
    'NO9386011117947', 'DK5000400440116243', 'IE29AIBK93115212345678']
IBAN_SHAPES = {'DE': ('n', 18), 'FR': ('nnnnnnnnnnaaaaaaaaaaann', None), 'NL': ('aaaannnnnnnnnn', None),
    'GB': ('aaaannnnnnnnnnnnnn', None), 'ES': ('n', 20), 'AT': ('n', 16), 'BE': ('n', 12),
    'CH': ('n', 17), 'PL': ('n', 24), 'IE': ('aaaannnnnnnnnnnnnn', None), 'PT': ('n', 21),
    'FI': ('n', 14), 'LU': ('n', 16), 'SE': ('n', 20)}

def rand_iban(r):
    cc = r.choice(sorted(IBAN_SHAPES))
    shape, n = IBAN_SHAPES[cc]
    if n:
        shape = 'n' * n
    bban = ''.join(r.choice(string.digits) if c == 'n' else r.choice(string.ascii_uppercase) for c in shape)
    return cc + iban_check(cc, bban) + bban

FIRST = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy',
         'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter']
LAST = ['smith', 'jones', 'garcia', 'muller', 'dubois', 'rossi', 'tanaka', 'novak', 'olsen']
DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com', 'corp.example.co.uk',
           'test.example', 'eu.example.org', 'sub.example.net']

def rand_email(r):
    f, l = r.choice(FIRST), r.choice(LAST)
    local = r.choice([f, f + '.' + l, f + '_' + l, f + l + str(r.randint(1, 99)),
                      f + '+news', f[0] + '.' + l, (f + '.' + l).upper(), f + '-' + l])
    return local + '@' + r.choice(DOMAINS)

def rand_phone(r):
    k = r.randint(0, 13)
    x4 = '01%02d' % r.randint(0, 99)          # NANP fictional 555-0100..0199
    area = r.choice(['415', '212', '312', '617', '206', '303'])
    if k == 0: return '(%s) 555-%s' % (area, x4)
    if k == 1: return '%s-555-%s' % (area, x4)
    if k == 2: return '%s.555.%s' % (area, x4)
    if k == 3: return '+1 %s 555 %s' % (area, x4)
    if k == 4: return '+1%s555%s' % (area, x4)
    if k == 5: return '+1 (%s) 555-%s' % (area, x4)
    uk = '%03d' % r.randint(0, 999)          # Ofcom drama ranges
    if k == 6: return '020 7946 0' + uk
    if k == 7: return '07700 900' + uk
    if k == 8: return '+44 20 7946 0' + uk
    if k == 9: return '+44 (0)20 7946 0' + uk
    fr = '%02d %02d' % (r.randint(0, 99), r.randint(0, 99))   # ARCEP fiction 01 99 00 xx xx
    if k == 10: return '01 99 00 ' + fr
    if k == 11: return '+33 1 99 00 ' + fr
    de = '%07d' % r.randint(0, 9999999)
    if k == 12: return '030 1' + de
    return '+49 30 1' + de

def rand_ssn(r):
    while True:
        a, g, s = r.randint(1, 899), r.randint(1, 99), r.randint(1, 9999)
        if a != 666:
            return '%03d-%02d-%04d' % (a, g, s)

def rand_chars(r, alphabet, n):
    return ''.join(r.choice(alphabet) for _ in range(n))

AN = string.ascii_letters + string.digits
def rand_key(r):
    k = r.randint(0, 8)
    if k == 0: return 'AKIA' + rand_chars(r, string.ascii_uppercase + string.digits, 16)
    if k == 1: return 'sk-proj-' + rand_chars(r, AN + '_-', 120) + 'A1'
    if k == 2: return 'sk-' + rand_chars(r, AN, 46) + '9a'
    if k == 3: return 'sk-ant-api03-' + rand_chars(r, AN + '_-', 93) + 'AA'
    if k == 4: return r.choice(['ghp_', 'gho_', 'ghs_', 'ghu_', 'ghr_']) + rand_chars(r, AN, 36)
    if k == 5: return 'github_pat_11' + rand_chars(r, string.ascii_uppercase + string.digits, 20) + '_' + rand_chars(r, AN, 59)
    if k == 6: return 'xoxb-%d-%d-%s' % (r.randint(10**11, 10**12), r.randint(10**12, 10**13), rand_chars(r, AN, 24))
    if k == 7: return 'AIza' + rand_chars(r, AN + '_-', 35)
    return 'ASIA' + rand_chars(r, string.ascii_uppercase + string.digits, 16)

def rand_ip(r):
    k = r.randint(0, 6)
    if k == 0: return '192.0.2.%d' % r.randint(0, 255)
    if k == 1: return '198.51.100.%d' % r.randint(0, 255)
    if k == 2: return '203.0.113.%d' % r.randint(0, 255)
    if k == 3: return '10.%d.%d.%d' % (r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))
    if k == 4: return '2001:db8::%x' % r.randint(1, 0xffff)
    if k == 5: return '2001:db8:%x:%x::%x' % (r.randint(0, 0xffff), r.randint(0, 0xffff), r.randint(1, 0xff))
    return 'fe80::%x:%x' % (r.randint(1, 0xffff), r.randint(1, 0xffff))

DEV_TEMPLATES = ['{v}', 'Please contact {v} for details.', 'My {w} is {v}, thanks!',
    'Here it is: {v}', '{"value": "{v}"}', 'Café — {v} — merci beaucoup', '({v})',
    'value={v}; next', 'Ticket owner said to use {v}.', '- {v}\n- done']
HELD_TEMPLATES = ['Can you check {v} please?', '<td>{v}</td>', "Ihre Angabe: «{v}».",
    'ok so {v} right', 'user input => {v}', "'{v}'", '日本語のテキスト {v} です', '[{v}]',
    'Customer wrote: "reach me via {v}" yesterday']
WORDS = {'EMAIL': 'email', 'PHONE': 'number', 'CREDIT_CARD': 'card', 'US_SSN': 'SSN',
         'IBAN': 'IBAN', 'IP_ADDRESS': 'address', 'API_KEY': 'key'}

def positives(r, templates, per):
    out = []
    gens = {'EMAIL': rand_email, 'PHONE': rand_phone, 'US_SSN': rand_ssn, 'IP_ADDRESS': rand_ip,
            'API_KEY': rand_key,
            'CREDIT_CARD': lambda r: fmt_card(r.choice(PUBLISHED_CARDS) if r.random() < .5 else
                                              luhn_complete(*r.choice(CARD_PREFIXES), r), r),
            'IBAN': lambda r: (lambda v: group4(v) if r.random() < .5 else v)(
                r.choice(PUBLISHED_IBANS) if r.random() < .4 else rand_iban(r))}
    for ent, g in gens.items():
        for _ in range(per):
            v = g(r)
            t = r.choice(templates).replace('{w}', WORDS[ent]).replace('{v}', v)
            out.append(('pos', ent, t, v))
    # context-dependent values
    for _ in range(per // 3):
        v = rand_ssn(r).replace('-', '')
        out.append(('pos', 'US_SSN', r.choice(['SSN: {v}', 'social security number {v}', 'ssn={v}']).replace('{v}', v), v))
        v = rand_chars(r, string.ascii_letters, 20) + rand_chars(r, AN + '/+', 18) + 'Q7'
        out.append(('pos', 'API_KEY', r.choice(['aws_secret_access_key = {v}', 'AWS_SECRET_ACCESS_KEY={v}',
                    'aws secret: {v}']).replace('{v}', v), v))
    return out

def negatives(r, templates, n):
    gens = [
        ('CREDIT_CARD', lambda: fmt_card(luhn_break(luhn_complete(*r.choice(CARD_PREFIXES), r)), r)),
        ('CREDIT_CARD', lambda: luhn_complete('9', 16, r)),          # no issuer
        ('CREDIT_CARD', lambda: str(r.randint(10**21, 10**22))),     # too long
        ('IP_ADDRESS', lambda: 'v%d.%d.%d.%d' % tuple(r.randint(0, 20) for _ in range(4))),
        ('IP_ADDRESS', lambda: '%d.%d.%d' % tuple(r.randint(0, 20) for _ in range(3))),
        ('IP_ADDRESS', lambda: '%d.%d.%d.%d.%d' % tuple(r.randint(0, 20) for _ in range(5))),
        ('IP_ADDRESS', lambda: '%d.%d.%d.%d' % (r.randint(256, 999), 1, 2, 3)),
        ('IP_ADDRESS', lambda: '%02d:%02d:%02d' % (r.randint(0, 23), r.randint(0, 59), r.randint(0, 59))),
        ('IP_ADDRESS', lambda: ':'.join('%02X' % r.randint(0, 255) for _ in range(6))),
        ('IP_ADDRESS', lambda: r.choice(['std::vector<int>', 'Foo::bar()', 'a::b', 'crate::mod::f'])),
        ('PHONE', lambda: '%04d-%02d-%02d' % (r.randint(1990, 2030), r.randint(1, 12), r.randint(1, 28))),
        ('PHONE', lambda: '%02d/%02d/%04d' % (r.randint(1, 12), r.randint(1, 28), r.randint(1990, 2030))),
        ('PHONE', lambda: '%02d.%02d.%04d' % (r.randint(1, 28), r.randint(1, 12), r.randint(1990, 2030))),
        ('PHONE', lambda: 'Order #%d-%03d-%04d' % (r.randint(200, 999), r.randint(200, 999), r.randint(0, 9999))),
        ('PHONE', lambda: 'order number %d' % r.randint(10**9, 10**10)),
        ('PHONE', lambda: 'ts=%d' % r.randint(1600000000, 1800000000)),
        ('PHONE', lambda: '%d' % r.randint(1600000000000, 1800000000000)),
        ('PHONE', lambda: '%04d-%02d-%02dT%02d:%02d:%02dZ' % (2024, r.randint(1, 12), r.randint(1, 28), 10, 30, 0)),
        ('PHONE', lambda: 'serial %d-%d-%d' % (r.randint(200, 999), r.randint(200, 999), r.randint(1000, 9999))),
        ('PHONE', lambda: 'version %d.%d.%d' % (r.randint(0, 20), r.randint(0, 20), r.randint(0, 200))),
        ('PHONE', lambda: 'ISBN 978-%d-%02d-%06d-%d' % (r.randint(0, 9), r.randint(10, 99), r.randint(0, 999999), r.randint(0, 9))),
        ('US_SSN', lambda: '%03d-%02d-%04d' % (r.choice([0, 666, r.randint(900, 999)]), r.randint(1, 99), r.randint(1, 9999))),
        ('US_SSN', lambda: '%03d-00-%04d' % (r.randint(1, 899), r.randint(1, 9999))),
        ('US_SSN', lambda: '%03d-%02d-0000' % (r.randint(1, 899), r.randint(1, 99))),
        ('US_SSN', lambda: 'id %d' % r.randint(10**8, 10**9 - 1)),
        ('IBAN', lambda: (lambda v: v[:2] + '%02d' % ((int(v[2:4]) + 1) % 100) + v[4:])(rand_iban(r))),
        ('IBAN', lambda: 'XX%02d%s' % (r.randint(10, 99), rand_chars(r, string.digits, 18))),
        ('EMAIL', lambda: r.choice(['user@localhost', '@app.route("/")', 'npm i @types/node',
            'icon@2x.png', 'lodash@4.17.21', 'foo@bar', '@Override', 'name@', 'a @ b',
            'git tag v1@', 'see @alice on the forum', 'img@3x.jpg', 'pkg@latest'])),
        ('API_KEY', lambda: r.choice(['sk-learn is a library', 'AKIA1234', 'ghp_short',
            'the task-runner-job-queue-worker-pool module', 'xoxb-abc'])),
        ('API_KEY', lambda: rand_chars(r, '0123456789abcdef', 40)),   # sha1
        ('API_KEY', lambda: rand_chars(r, '0123456789abcdef', 64)),   # sha256
        ('API_KEY', lambda: '%s-%s-%s-%s-%s' % (rand_chars(r, '0123456789abcdef', 8), rand_chars(r, '0123456789abcdef', 4),
            rand_chars(r, '0123456789abcdef', 4), rand_chars(r, '0123456789abcdef', 4), rand_chars(r, '0123456789abcdef', 12))),
        ('API_KEY', lambda: rand_chars(r, AN, 40)),                    # no context
    ]
    out = []
    for _ in range(n):
        ent, g = r.choice(gens)
        v = g()
        t = r.choice(templates).replace('{w}', 'value').replace('{v}', v)
        out.append(('neg', ent, t, ''))
    for t in ['Hello, world. ', 'The meeting is at 10:30 on 2024-05-01.', 'Pi is 3.14159265358979.',
              'We sold 1,234,567 units.', 'Call me maybe.', 'Use Python 3.12.1 or newer.']:
        out.append(('neg', 'PHONE', t, ''))
    return out

# Hand-written rows in the style of chat and tool traffic (held out: written
# after the rules, not used to change them).
HANDWRITTEN = [
    ('pos', 'EMAIL', 'Hi, I am Dana (dana.w@example.org) and I need help with my order.', 'dana.w@example.org'),
    ('pos', 'EMAIL', 'git log --author="ops-team@example.com"', 'ops-team@example.com'),
    ('pos', 'EMAIL', 'From: "Support" <support+ticket4411@help.example.net>', 'support+ticket4411@help.example.net'),
    ('pos', 'EMAIL', 'cc:a.b.c@example.co.uk;', 'a.b.c@example.co.uk'),
    ('pos', 'PHONE', 'You can call me at 212-555-0187 after 6pm.', '212-555-0187'),
    ('pos', 'PHONE', 'Tel.: +49 30 901820', '+49 30 901820'),
    ('pos', 'PHONE', 'Mobil: 0151 23456789', '0151 23456789'),
    ('pos', 'PHONE', "Appelez-moi au 06 12 34 56 78 s'il vous plaît", '06 12 34 56 78'),
    ('pos', 'PHONE', 'UK office: 0161 496 0123', '0161 496 0123'),
    ('pos', 'PHONE', '{"phone":"+1-202-555-0143"}', '+1-202-555-0143'),
    ('pos', 'PHONE', 'whatsapp +447700900456', '+447700900456'),
    ('pos', 'CREDIT_CARD', 'My Visa is 4012 8888 8888 1881 exp 12/29 cvv 123', '4012 8888 8888 1881'),
    ('pos', 'CREDIT_CARD', '{"card_number": "5105105105105100"}', '5105105105105100'),
    ('pos', 'CREDIT_CARD', 'amex:371449635398431', '371449635398431'),
    ('pos', 'CREDIT_CARD', 'Discover 6011-0009-9013-9424.', '6011-0009-9013-9424'),
    ('pos', 'US_SSN', 'Employee SSN 078-05-1121 on file', '078-05-1121'),
    ('pos', 'US_SSN', 'social security #: 219099999', '219099999'),
    ('pos', 'IBAN', 'Please wire to IBAN CH93 0076 2011 6238 5295 7', 'CH93 0076 2011 6238 5295 7'),
    ('pos', 'IBAN', 'iban=BE68539007547034&amount=10', 'BE68539007547034'),
    ('pos', 'IP_ADDRESS', 'ssh root@203.0.113.45 -p 2222', '203.0.113.45'),
    ('pos', 'IP_ADDRESS', 'X-Forwarded-For: 198.51.100.23', '198.51.100.23'),
    ('pos', 'IP_ADDRESS', 'listen [2001:db8:85a3::8a2e:370:7334]:443;', '2001:db8:85a3::8a2e:370:7334'),
    ('pos', 'IP_ADDRESS', 'ping 8.8.8.8', '8.8.8.8'),
    ('pos', 'API_KEY', 'curl -H "Authorization: Bearer sk-proj-9fK2LmQ8xR4tY7uI1oP3aS6dF0gH5jK8lZ2xC4vB7nM1qW3eR" https://api.example.com', 'sk-proj-9fK2LmQ8xR4tY7uI1oP3aS6dF0gH5jK8lZ2xC4vB7nM1qW3eR'),
    ('pos', 'API_KEY', 'export GITHUB_TOKEN=ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5', 'ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5'),
    ('pos', 'API_KEY', "slack_token: 'xoxp-2718281828-3141592653-5772156649-abcdef0123456789abcdef0123456789'", 'xoxp-2718281828-3141592653-5772156649-abcdef0123456789abcdef0123456789'),
    ('pos', 'API_KEY', 'aws_access_key_id=AKIAI44QH8DHBEXAMPLE', 'AKIAI44QH8DHBEXAMPLE'),
    ('pos', 'API_KEY', 'aws_secret_access_key=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY', 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY'),
    ('neg', 'PHONE', 'The build finished in 1234.56 seconds on 2025-03-04 at 17:45:12.', ''),
    ('neg', 'PHONE', 'Tracking number 1Z 999 AA1 01 2345 6784 is on its way', ''),
    ('neg', 'PHONE', 'Invoice INV-2024-000123 total 1,299.00 EUR', ''),
    ('neg', 'PHONE', 'Run pip install requests==2.31.0 then restart.', ''),
    ('neg', 'PHONE', 'Page 123 of 456, figure 7.8.9', ''),
    ('neg', 'PHONE', 'The answer is 42 and the year 1999 was 25 years ago.', ''),
    ('neg', 'PHONE', 'Coordinates: 48.8566, 2.3522', ''),
    ('neg', 'PHONE', 'Latency p50=12ms p99=340ms over 100000 requests', ''),
    ('neg', 'CREDIT_CARD', 'Your order id is 4000123412341235 (not a card: fails Luhn)', ''),
    ('neg', 'CREDIT_CARD', 'epoch ms 1732550400000 and ns 1732550400000000000', ''),
    ('neg', 'CREDIT_CARD', 'pi = 3.14159265358979323846', ''),
    ('neg', 'US_SSN', 'Zip code 94105-1234 and 10001.', ''),
    ('neg', 'US_SSN', 'Part number 123-456-789 is back in stock', ''),
    ('neg', 'IBAN', 'The model GB2000 and DE42 are different products.', ''),
    ('neg', 'IBAN', 'Use ES256 or RS512 for the JWT signature.', ''),
    ('neg', 'IP_ADDRESS', 'Upgrade from Python 3.11.4 to 3.12.0', ''),
    ('neg', 'IP_ADDRESS', 'See RFC 9110 section 15.5.20 for details.', ''),
    ('neg', 'IP_ADDRESS', 'Mon Nov 25 16:45:02 UTC 2026', ''),
    ('neg', 'IP_ADDRESS', 'for (auto& x : std::views::iota(0, 10)) {}', ''),
    ('neg', 'IP_ADDRESS', 'ratio 16:9 at 1920x1080, aspect 4:3', ''),
    ('neg', 'EMAIL', 'In Python, use @property and @staticmethod decorators.', ''),
    ('neg', 'EMAIL', 'yarn add @babel/core@7.24.0', ''),
    ('neg', 'EMAIL', 'Thanks @maintainer for the quick fix!', ''),
    ('neg', 'EMAIL', 'The regex [a-z]+@[a-z]+\\.[a-z]{2,} matches emails', ''),
    ('neg', 'API_KEY', 'commit 9fceb02d0ae598e95dc970b74767f19372d61af8', ''),
    ('neg', 'API_KEY', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', ''),
    ('neg', 'API_KEY', 'The sk-learn API and the sk- prefix are documented.', ''),
    ('neg', 'API_KEY', 'Set OPENAI_API_KEY=<your key here> before running.', ''),
    ('neg', 'API_KEY', 'jwt header eyJhbGciOiJIUzI1NiJ9 is base64', ''),
    ('neg', 'API_KEY', 'AKIA is the prefix of AWS access key ids.', ''),
    ('neg', 'API_KEY', 'request_id=req_01HZX3Q8V4K2M9N7P5R1T3W6Y8', ''),
]

def write(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('# label\tentity\ttext\tvalue  (generated by gen.py; \\n in text is a newline)\n')
        for lab, ent, t, v in rows:
            assert '\t' not in t and (lab == 'neg' or v in t)
            f.write('%s\t%s\t%s\t%s\n' % (lab, ent, t.replace('\n', '\\n'), v))

if __name__ == '__main__':
    r = random.Random(20261125)
    write(os.path.join(HERE, 'labeled.tsv'), positives(r, DEV_TEMPLATES, 30) + negatives(r, DEV_TEMPLATES, 150))
    r = random.Random(777)
    write(os.path.join(HERE, 'heldout.tsv'), positives(r, HELD_TEMPLATES, 15) + negatives(r, HELD_TEMPLATES, 80) + HANDWRITTEN)

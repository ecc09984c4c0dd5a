import ast, sys, os
from collections import defaultdict
root = sys.argv[1] if len(sys.argv)>1 else 'faithfusion'
mods = {}
for dp, dn, fn in os.walk(root):
    for f in fn:
        if f.endswith('.py'):
            p = os.path.join(dp, f)
            m = p[:-3].replace('/', '.')
            if m.endswith('.__init__'): m = m[:-9]
            mods[m] = p
edges = defaultdict(set)
for m, p in mods.items():
    tree = ast.parse(open(p).read())
    pkg = m if p.endswith('__init__.py') else m.rsplit('.',1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('faithfusion'): edges[m].add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split('.')
                base = base[:len(base)-node.level+1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            if name.startswith('faithfusion'):
                for a in node.names:
                    cand = name + '.' + a.name
                    edges[m].add(cand if cand in mods else name)
def resolve(n):
    while n not in mods and '.' in n: n = n.rsplit('.',1)[0]
    return n
E = {m: {resolve(t) for t in ts if resolve(t)!=m} for m, ts in edges.items()}
def sub(m):
    parts = m.split('.')
    return parts[1] if len(parts)>1 else '(root)'
# subpackage graph
P = defaultdict(set)
for m, ts in E.items():
    for t in ts:
        a, b = sub(m), sub(t)
        if a!=b and b not in ('(root)',) and not t=='faithfusion': P[a].add(b)
# module-level SCCs
sys.setrecursionlimit(10000)
idx={}; low={}; st=[]; on=set(); sccs=[]; c=[0]
def sc(v):
    idx[v]=low[v]=c[0]; c[0]+=1; st.append(v); on.add(v)
    for w in E.get(v,()):
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop(); on.discard(w); comp.append(w)
            if w==v: break
        if len(comp)>1: sccs.append(comp)
for v in list(mods):
    if v not in idx: sc(v)
print('module cycles (SCCs):', len(sccs))
for s in sccs: print('  ', sorted(s))
print('subpackage graph:')
for a in sorted(P): print(f'  {a} -> {sorted(P[a])}')

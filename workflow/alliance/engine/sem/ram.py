"""A structural-equation model as a parameter table and its RAM matrices (McArdle & McDonald 1984).

Variables are the observed ones (in data-column order) followed by the latent ones. A model is a
list of lavaan-style rows (`lhs op rhs`):
- `f =~ x`: loading of indicator x on latent f (RAM A[x, f]);
- `y ~ x`: regression of y on x (A[y, x]);
- `a ~~ b`: (residual) variance or covariance (S[a, b] = S[b, a]);
- `v ~1`: mean / intercept of v (m[v]).
Each row is fixed at `value` or free; free rows with the same `label` are one parameter (an
equality constraint, as a shared label in lavaan). With B = (I - A)^-1 and F selecting the
observed variables, the implied moments are  Sigma = F B S B' F'  and  mu = F B m.

`Ram.chain` turns the likelihood's derivatives with respect to Sigma and mu into the gradient over
the parameters, and `Ram.jacobian` gives d Sigma / d theta and d mu / d theta for the expected
information, both analytically (from dB = B dA B).
`Ram.lavaan_syntax` writes the same model as lavaan syntax, every row explicit, so R can refit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alliance.errors import InputError

OPS = ("=~", "~", "~~", "~1")


@dataclass(frozen=True)
class Row:
    """One parameter-table row; `value` is the fixed value, or the start value of a free row."""

    lhs: str
    op: str
    rhs: str
    free: bool
    value: float
    label: str = ""

    @property
    def name(self) -> str:
        """The label, or lavaan's `lhs op rhs` text for an unlabelled row."""
        return self.label or f"{self.lhs}{self.op}{self.rhs}"


@dataclass
class Implied:
    """Model-implied moments at one parameter vector (B and m kept for the Jacobian)."""

    B: np.ndarray
    S: np.ndarray
    m: np.ndarray
    sigma: np.ndarray
    mu: np.ndarray


@dataclass
class ModelBuilder:
    """Collects rows (`load`, `regress`, `cov`, `mean`) and compiles them into a `Ram`."""

    observed: list[str]
    latent: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def add_latent(self, *names: str) -> None:
        """Declare latent variables (in this order, after the observed ones)."""
        self.latent += [n for n in names if n not in self.latent]

    def load(
        self, lv: str, ov: str, value: float = 1.0, *, free: bool = False, label: str = ""
    ) -> None:
        """Loading of `ov` on latent `lv` (fixed at `value` unless free)."""
        self.rows.append(Row(lv, "=~", ov, free, float(value), label))

    def regress(
        self, y: str, x: str, value: float = 0.0, *, free: bool = True, label: str = ""
    ) -> None:
        """Directed path x -> y."""
        self.rows.append(Row(y, "~", x, free, float(value), label))

    def cov(
        self, a: str, b: str, value: float = 0.0, *, free: bool = True, label: str = ""
    ) -> None:
        """(Residual) covariance of a and b; a variance when a == b."""
        self.rows.append(Row(a, "~~", b, free, float(value), label))

    def mean(self, v: str, value: float = 0.0, *, free: bool = True, label: str = "") -> None:
        """Mean (intercept, when v is endogenous) of v."""
        self.rows.append(Row(v, "~1", "", free, float(value), label))

    def compile(self) -> Ram:
        """The RAM form with one parameter per free label (unlabelled free rows: one each)."""
        return Ram(list(self.observed), list(self.latent), list(self.rows))


class Ram:
    """Compiled model: fixed-value matrices A0, S0, m0 and the cells each free parameter fills."""

    def __init__(self, observed: list[str], latent: list[str], rows: list[Row]) -> None:
        self.observed = observed
        self.latent = latent
        self.rows = rows
        self.variables = observed + latent
        dup = {v for v in self.variables if self.variables.count(v) > 1}
        if dup:
            raise InputError(f"variable names used twice: {sorted(dup)}", check="sem.model")
        index = {v: i for i, v in enumerate(self.variables)}
        self.p, self.v = len(observed), len(self.variables)
        self.A0 = np.zeros((self.v, self.v))
        self.S0 = np.zeros((self.v, self.v))
        self.m0 = np.zeros(self.v)
        names: list[str] = []
        start: list[float] = []
        self.row_param = np.full(len(rows), -1)
        cells: dict[str, list[tuple[int, int, int]]] = {"A": [], "S": [], "m": []}
        seen: set[tuple[str, int, int]] = set()
        for k, row in enumerate(rows):
            if row.op not in OPS:
                raise InputError(f"unknown operator {row.op!r}", check="sem.model")
            for var in (row.lhs, row.rhs) if row.op != "~1" else (row.lhs,):
                if var not in index:
                    raise InputError(
                        f"row {row.name}: {var!r} is not a variable", check="sem.model"
                    )
            mat, r, c = self._cell(row, index)
            key = (mat, min(r, c), max(r, c)) if mat == "S" else (mat, r, c)
            if key in seen:
                raise InputError(f"row {row.name} sets a cell twice", check="sem.model")
            seen.add(key)
            if not row.free:
                self._set(mat, r, c, row.value)
                continue
            if row.label and row.label in names:
                idx = names.index(row.label)
            else:
                idx = len(names)
                names.append(row.name)
                start.append(row.value)
            self.row_param[k] = idx
            cells[mat].append((r, c, idx))
        self.names = names
        self.start = np.asarray(start, dtype=float)
        self.k = len(names)
        self._cells = {m: np.asarray(c, dtype=int).reshape(-1, 3) for m, c in cells.items()}
        # incidence: parameter x cell, so a Jacobian is one matrix product over the cells
        self._incidence = {
            m: np.eye(self.k)[:, c[:, 2]] if len(c) else np.zeros((self.k, 0))
            for m, c in self._cells.items()
        }

    @staticmethod
    def _cell(row: Row, index: dict[str, int]) -> tuple[str, int, int]:
        if row.op == "=~":
            return "A", index[row.rhs], index[row.lhs]
        if row.op == "~":
            return "A", index[row.lhs], index[row.rhs]
        if row.op == "~~":
            return "S", index[row.lhs], index[row.rhs]
        return "m", index[row.lhs], 0

    def _set(self, mat: str, r: int, c: int, value: float) -> None:
        if mat == "A":
            self.A0[r, c] = value
        elif mat == "S":
            self.S0[r, c] = self.S0[c, r] = value
        else:
            self.m0[r] = value

    def matrices(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A, S and m at the parameter vector theta."""
        A, S, m = self.A0.copy(), self.S0.copy(), self.m0.copy()
        a, s, mm = self._cells["A"], self._cells["S"], self._cells["m"]
        A[a[:, 0], a[:, 1]] = theta[a[:, 2]]
        S[s[:, 0], s[:, 1]] = theta[s[:, 2]]
        S[s[:, 1], s[:, 0]] = theta[s[:, 2]]
        m[mm[:, 0]] = theta[mm[:, 2]]
        return A, S, m

    def implied(self, theta: np.ndarray) -> Implied:
        """Implied covariance and mean of the observed variables at theta."""
        A, S, m = self.matrices(theta)
        B = np.linalg.inv(np.eye(self.v) - A)
        FB = B[: self.p]
        return Implied(B=B, S=S, m=m, sigma=FB @ S @ FB.T, mu=FB @ m)

    def latent_moments(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Implied covariance and mean of every variable (observed then latent)."""
        imp = self.implied(theta)
        return imp.B @ imp.S @ imp.B.T, imp.B @ imp.m

    def jacobian(self, imp: Implied) -> tuple[np.ndarray, np.ndarray]:
        """d vec(Sigma) / d theta as (k, p, p) and d mu / d theta as (k, p)."""
        p = self.p
        FB = imp.B[:p]
        T = imp.B @ imp.S @ FB.T  # v x p: row c is B[c, :] S B' F'
        Bm = imp.B @ imp.m
        jS = np.zeros((self.k, p * p))
        jm = np.zeros((self.k, p))
        s = self._cells["S"]
        if len(s):
            u, w = FB[:, s[:, 0]].T, FB[:, s[:, 1]].T
            outer = u[:, :, None] * w[:, None, :]
            off = (s[:, 0] != s[:, 1])[:, None, None]
            cell = outer + off * outer.transpose(0, 2, 1)
            jS += self._incidence["S"] @ cell.reshape(len(s), p * p)
        a = self._cells["A"]
        if len(a):
            u, w = FB[:, a[:, 0]].T, T[a[:, 1]]
            outer = u[:, :, None] * w[:, None, :]
            cell = outer + outer.transpose(0, 2, 1)
            jS += self._incidence["A"] @ cell.reshape(len(a), p * p)
            jm += self._incidence["A"] @ (u * Bm[a[:, 1]][:, None])
        mm = self._cells["m"]
        if len(mm):
            jm += self._incidence["m"] @ FB[:, mm[:, 0]].T
        return jS.reshape(self.k, p, p), jm

    def chain(self, imp: Implied, g_sigma: np.ndarray, g_mu: np.ndarray) -> np.ndarray:
        """Gradient over the parameters from d f / d Sigma (symmetric) and d f / d mu.

        Cell by cell without forming the Jacobian: for S[r, c], (2 - [r == c]) (FB' G FB)[r, c];
        for A[r, c], 2 (T G FB)[c, r] + (FB' g_mu)[r] (B m)[c], with T = B S B' F'; for m[r],
        (FB' g_mu)[r].
        """
        FB = imp.B[: self.p]
        T = imp.B @ imp.S @ FB.T
        GFB = g_sigma @ FB
        h_mu = FB.T @ g_mu
        g = np.zeros(self.k)
        s, a, m = self._cells["S"], self._cells["A"], self._cells["m"]
        if len(s):
            H = FB.T @ GFB
            vals = H[s[:, 0], s[:, 1]] * np.where(s[:, 0] == s[:, 1], 1.0, 2.0)
            g += np.bincount(s[:, 2], vals, self.k)
        if len(a):
            Q = T @ GFB
            Bm = imp.B @ imp.m
            vals = 2.0 * Q[a[:, 1], a[:, 0]] + h_mu[a[:, 0]] * Bm[a[:, 1]]
            g += np.bincount(a[:, 2], vals, self.k)
        if len(m):
            g += np.bincount(m[:, 2], h_mu[m[:, 0]], self.k)
        return g

    def variance_parameters(self) -> list[int]:
        """Indices of free parameters that are variances (S diagonal)."""
        s = self._cells["S"]
        return sorted({int(i) for r, c, i in s if r == c})

    def lavaan_syntax(self, *, compact: bool = True) -> str:
        """The model in lavaan syntax, every fixed value and label explicit (nothing left to
        lavaan's automatic parameters). `compact` joins the rows of one `lhs op` on one line."""
        lines: dict[tuple[str, str], list[str]] = {}
        for k, row in enumerate(self.rows):
            mod = row.label if row.free else _num(row.value)
            op, rhs = ("~", "1") if row.op == "~1" else (row.op, row.rhs)
            key = (row.lhs, op) if compact else (row.lhs, f"{op}#{k}")
            lines.setdefault(key, []).append(f"{mod + '*' if mod else ''}{rhs}")
        return "\n".join(
            f"{lhs} {op.split('#')[0]} {' + '.join(t)}" for (lhs, op), t in lines.items()
        )


def _num(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x))
